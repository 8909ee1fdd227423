// The simulated flash of the MicroPython WebAssembly port: host folders copied into its
// in-memory filesystem, shared by the simulation's runner (mp_run.mjs) and the firmware's heap
// harness (tests/firmware/mp_steps.mjs).
import fs from "node:fs";
import path from "node:path";

function mkdirs(mp, target) {
  let current = "";
  for (const part of target.split("/").filter(Boolean)) {
    current += "/" + part;
    try { mp.FS.mkdir(current); } catch { /* exists */ }
  }
}

// Copy `hostDir` into the port's filesystem at `target`, __pycache__ left out.
export function copyTree(mp, hostDir, target) {
  mkdirs(mp, target);
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    if (entry.name === "__pycache__") continue;
    const hostPath = path.join(hostDir, entry.name);
    const targetPath = target + "/" + entry.name;
    if (entry.isDirectory()) copyTree(mp, hostPath, targetPath);
    else mp.FS.writeFile(targetPath, fs.readFileSync(hostPath));
  }
}
