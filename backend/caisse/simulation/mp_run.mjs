// Run a Python script inside the real MicroPython runtime (official WebAssembly port).
//
//   node backend/caisse/simulation/mp_run.mjs [--heap BYTES] [--mount HOSTDIR:TARGET]...
//        [--persist HOSTDIR:TARGET]... SCRIPT.py
//
// Each --mount copies a host folder into MicroPython's in-memory filesystem (the simulated
// flash), so `/flash/caisse_terminal/...` imports exactly the files that ship to the device.
// A --persist folder is mounted the same way and copied back when the script ends, however it
// ends (a SystemExit from a simulated reset included): the next run over the same host folder
// sees the flash as this one left it, as a rebooted board does.
// The script's stdout and stderr pass through (written synchronously); an uncaught Python
// exception prints its traceback and exits 1. The process exits as soon as runPython returns:
// the port's asyncio runs tasks on JavaScript timers, so a task left pending (an endless
// `create_task(...)` loop, a sleep) would otherwise keep Node alive until the harness timeout.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { copyTree } from "./mp_fs.mjs";

const args = process.argv.slice(2);
let heapsize = 1024 * 1024;
const mounts = [];
const persists = [];
let script = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--heap") heapsize = parseInt(args[++i], 10);
  else if (args[i] === "--mount") mounts.push(args[++i]);
  else if (args[i] === "--persist") persists.push(args[++i]);
  else script = args[i];
}
if (!script) {
  console.error("usage: mp_run.mjs [--heap BYTES] [--mount HOSTDIR:TARGET]... SCRIPT.py");
  process.exit(2);
}

// Synchronous writes, so nothing is left in a Node buffer when the process exits. Should the
// pipe be non-blocking and full, retry: the parent (pytest) is reading it.
function write(fd, text) {
  const data = Buffer.from(text, "utf8");
  let done = 0;
  while (done < data.length) {
    try { done += fs.writeSync(fd, data, done); } catch (error) { if (error.code !== "EAGAIN") throw error; }
  }
}

const mp = await loadMicroPython({
  heapsize,
  stdout: (line) => write(1, line + "\n"),
  stderr: (line) => write(2, line + "\n"),
});

for (const mount of [...mounts, ...persists]) {
  const [hostDir, target] = mount.split(":");
  copyTree(mp, hostDir, target);
}

// The simulated flash back to the host folder: same files, same bytes, nothing else.
function copyBack(target, hostDir) {
  fs.rmSync(hostDir, { recursive: true, force: true });
  fs.mkdirSync(hostDir, { recursive: true });
  for (const name of mp.FS.readdir(target)) {
    if (name === "." || name === "..") continue;
    const from = target + "/" + name;
    const to = path.join(hostDir, name);
    if (mp.FS.isDir(mp.FS.stat(from).mode)) copyBack(from, to);
    else fs.writeFileSync(to, mp.FS.readFile(from));
  }
}

let code = 0;
try {
  mp.runPython(fs.readFileSync(script, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") {
    write(2, String(error && error.stack || error) + "\n");
    code = 2;
  } else if (error.type !== "SystemExit") {
    write(2, error.message + "\n");
    code = 1;
  }
}
for (const persist of persists) {
  const [hostDir, target] = persist.split(":");
  copyBack(target, hostDir);
}
process.exit(code);
