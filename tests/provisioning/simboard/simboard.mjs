// A simulated MicroPython board on a serial line: the real MicroPython runtime (WebAssembly
// port) behind an emulation of the REPL protocol that mpremote and pyboard.py speak.
//
//   node simboard.mjs --fd N --board-dir DIR [--heap BYTES] [--uid HEX] [--hardware JSON]
//
// fd N is the master side of a pseudo-terminal (tests/provisioning/simboard/launcher.py makes
// it); the host opens the slave side as it would open /dev/ttyUSB0. DIR/flash is the simulated
// flash: loaded into the in-memory filesystem at boot and written back after every command, so
// what mpremote copied survives a reboot or an unplugged cable. DIR/rtc.json keeps the clock
// offset set through machine.RTC (an RTC survives a soft reset).
//
// The protocol follows MicroPython's shared/runtime/pyexec.c (event-driven REPL):
// - friendly REPL: line editing with echo, Ctrl-A raw REPL, Ctrl-B banner, Ctrl-C break,
//   Ctrl-D soft reset, Ctrl-E paste mode;
// - raw REPL: "raw REPL; CTRL-B to exit\r\n>", bytes accumulate, Ctrl-D answers "OK" then
//   stdout, \x04, stderr, \x04 and ">"; Ctrl-D on an empty line soft-resets; Ctrl-C clears the
//   line; Ctrl-B goes back to the friendly REPL;
// - raw-paste: Ctrl-E 'A' Ctrl-A answers "R\x01", a little-endian u16 window and \x01; every
//   window of bytes consumed is acknowledged with \x01; Ctrl-D ends the data, answered by \x04,
//   then the output as in the raw REPL.
// The ROM adds machine (RTC, unique_id, reset, and I2C, Pin, PWM on simulated peripherals),
// os.urandom and simnet (HTTP through the host, standing for the Wi-Fi).
// The peripherals are board_hw.py (here) over the bus-level simulators of tests/firmware/sim/,
// both loaded into /sim, outside the flash; --hardware JSON says which parts the board has
// (see board_hw.py). DIR/atecc608.json keeps the secure element's key slots, DIR/hardware.log
// receives every tone of the buzzer and change of the LED.
// Boot runs boot.py (not main.py: the simulated board starts as if main.py had been
// interrupted, because a forever loop would hold the single-threaded runtime).
// Once the runtime is up the script prints "ready" on its stdout (a pipe to the launcher).
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import tty from "node:tty";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const CTRL_A = 0x01, CTRL_B = 0x02, CTRL_C = 0x03, CTRL_D = 0x04, CTRL_E = 0x05;
const RAW_PASTE_WINDOW = 128; // half of MICROPY_REPL_STDIN_BUFFER_MAX (256), as on an ESP32
const SYSTEM_DIRS = new Set(["tmp", "home", "dev", "proc", "sim"]);
const BANNER = "MicroPython v1.27.0 on 2025-12-09; Caisse simulated board (wasm) with ESP32\r\n" +
  'Type "help()" for more information.\r\n';
const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";

const args = process.argv.slice(2);
const opt = { heap: 2 * 1024 * 1024, uid: null, hardware: "{}" };
for (let i = 0; i < args.length; i++) {
  const key = args[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase());
  opt[key] = args[++i];
}
const fd = parseInt(opt.fd, 10);
const boardDir = opt.boardDir;
const flashDir = path.join(boardDir, "flash");
const rtcFile = path.join(boardDir, "rtc.json");
const uid = opt.uid || crypto.createHash("sha256").update(path.resolve(boardDir)).digest("hex").slice(0, 12);
fs.mkdirSync(flashDir, { recursive: true });
const HERE = path.dirname(fileURLToPath(import.meta.url));
const HW_SIM_DIR = path.join(HERE, "..", "..", "firmware", "sim");
const hardwareLog = path.join(boardDir, "hardware.log");
const stateFile = (name) => path.join(boardDir, name.replace(/[^a-z0-9_]/g, "") + ".json");

// ---- serial line -------------------------------------------------------------------------

function send(data) {
  const buf = typeof data === "string" ? Buffer.from(data, "latin1") : Buffer.from(data);
  let done = 0;
  while (done < buf.length) {
    try {
      done += fs.writeSync(fd, buf, done);
    } catch (error) {
      if (error.code === "EAGAIN") continue;
      throw error;
    }
  }
}

// MicroPython's stdout on a UART or USB CDC turns "\n" into "\r\n".
function cooked(bytes) {
  const out = [];
  for (const b of bytes) {
    if (b === 0x0a) out.push(0x0d);
    out.push(b);
  }
  return Buffer.from(out);
}

// ---- simulated flash -----------------------------------------------------------------------

let mp = null;
let flashCache = new Map(); // wasm path -> Buffer last written to the host

function walkWasm(dir, files, dirs) {
  for (const name of mp.FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    if (dir === "/" && SYSTEM_DIRS.has(name)) continue;
    const full = (dir === "/" ? "" : dir) + "/" + name;
    const st = mp.FS.stat(full);
    if (mp.FS.isDir(st.mode)) {
      dirs.push(full);
      walkWasm(full, files, dirs);
    } else {
      files.push(full);
    }
  }
}

function loadFlash() {
  flashCache = new Map();
  const copy = (hostDir, target) => {
    for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
      const hostPath = path.join(hostDir, entry.name);
      const wasmPath = target + "/" + entry.name;
      if (entry.isDirectory()) {
        mp.FS.mkdir(wasmPath);
        copy(hostPath, wasmPath);
      } else {
        const data = fs.readFileSync(hostPath);
        mp.FS.writeFile(wasmPath, data);
        flashCache.set(wasmPath, data);
      }
    }
  };
  copy(flashDir, "");
}

// Write back what changed since the last sync; called after every command, so an unplugged
// board keeps exactly what had been written before the cable went.
function syncFlash() {
  const files = [], dirs = [];
  walkWasm("/", files, dirs);
  for (const d of dirs) fs.mkdirSync(path.join(flashDir, d), { recursive: true });
  const seen = new Set(files);
  for (const f of files) {
    const data = Buffer.from(mp.FS.readFile(f));
    const cached = flashCache.get(f);
    if (!cached || !cached.equals(data)) {
      fs.writeFileSync(path.join(flashDir, f), data);
      flashCache.set(f, data);
    }
  }
  for (const f of [...flashCache.keys()]) {
    if (!seen.has(f)) {
      fs.rmSync(path.join(flashDir, f), { force: true });
      flashCache.delete(f);
    }
  }
  const keepDirs = new Set(dirs);
  const prune = (hostDir, rel) => {
    for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const r = rel + "/" + entry.name;
      prune(path.join(hostDir, entry.name), r);
      if (!keepDirs.has(r)) fs.rmSync(path.join(hostDir, entry.name), { recursive: true, force: true });
    }
  };
  prune(flashDir, "");
}

// ---- the runtime ---------------------------------------------------------------------------

let sink = null; // stdout bytes of the command being run
let resetRequested = false;

function rtcOffset() {
  try { return JSON.parse(fs.readFileSync(rtcFile, "utf8")).offset_s; } catch { return 0; }
}

const simModule = {
  urandom_hex: (n) => crypto.randomBytes(n).toString("hex"),
  rtc_offset: () => rtcOffset(),
  set_rtc_offset: (s) => fs.writeFileSync(rtcFile, JSON.stringify({ offset_s: Math.round(s) })),
  unique_id_hex: () => uid,
  reset: () => { resetRequested = true; },
  http: (method, url, headersJson, bodyHex) => httpSync(method, url, headersJson, bodyHex),
  hardware: () => opt.hardware,
  load_state: (name) => { try { return fs.readFileSync(stateFile(name), "utf8"); } catch { return ""; } },
  save_state: (name, text) => fs.writeFileSync(stateFile(name), text),
  event: (text) => fs.appendFileSync(hardwareLog, text + "\n"),
};

// The simulated Wi-Fi: one HTTP request, made synchronously (the runtime is synchronous) by a
// short-lived Node process. Answers JSON {status, body_hex} or {error} (the network is down).
const HTTP_CHILD = `
const [method, url, headers, bodyHex] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const body = bodyHex ? Buffer.from(bodyHex, "hex") : undefined;
fetch(url, { method, headers: JSON.parse(headers), body, signal: AbortSignal.timeout(10000) })
  .then(async (r) => process.stdout.write(JSON.stringify(
    { status: r.status, body_hex: Buffer.from(await r.arrayBuffer()).toString("hex") })))
  .catch((e) => process.stdout.write(JSON.stringify({ error: String(e.cause || e) })));
`;

function httpSync(method, url, headersJson, bodyHex) {
  const done = spawnSync(process.execPath, ["-e", HTTP_CHILD], {
    input: JSON.stringify([method, url, headersJson, bodyHex]), encoding: "utf8", timeout: 15000,
  });
  return done.stdout || JSON.stringify({ error: "no answer" });
}

// What the board's ROM provides: machine (RTC, unique_id, reset), os.urandom, an integer
// time.time() that follows the RTC.
const MACHINE_PY = `
import _simboard, time

class RTC:
    def datetime(self, dt=None):
        if dt is None:
            t = time.gmtime(time.time())
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        secs = time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0))
        _simboard.set_rtc_offset(secs - int(_host_time()))

def _host_time():
    return time._host_time()

def unique_id():
    import binascii
    return binascii.unhexlify(_simboard.unique_id_hex())

def reset():
    _simboard.reset()

def freq():
    return 240000000

from _hw import I2C, SoftI2C, Pin, PWM
`;

const ROM_PY = `
import os, time, binascii, _simboard

def _urandom(n):
    return binascii.unhexlify(_simboard.urandom_hex(n))

_host_time = time.time

def _time():
    return int(_host_time()) + _simboard.rtc_offset()

os.urandom = _urandom
time._host_time = _host_time
time.time = _time
`;

// caisse_terminal.net.HttpTransport's interface over the simulated Wi-Fi (no sockets in wasm).
const SIMNET_PY = `
import json, binascii, _simboard

class SimHttpTransport:
    def __init__(self, base_url, timeout_s=10):
        self.base_url = base_url.rstrip('/')

    def __call__(self, method, path, headers, body):
        body_hex = binascii.hexlify(body).decode() if body else ''
        answer = json.loads(_simboard.http(method, self.base_url + path, json.dumps(headers), body_hex))
        if 'error' in answer:
            raise OSError(answer['error'])
        return answer['status'], binascii.unhexlify(answer['body_hex'])
`;

const PRELUDE = "import sys\nsys.path.append('/sim')\nimport _rom\ndel sys, _rom\n";

async function boot() {
  mp = await loadMicroPython({
    heapsize: parseInt(opt.heap, 10),
    linebuffer: false,
    stdout: (bytes) => { if (sink) sink.push(...bytes); else send(cooked(bytes)); },
    stderr: (bytes) => { if (sink) sink.push(...bytes); else send(cooked(bytes)); },
  });
  mp.FS.mkdir("/sim");
  mp.FS.writeFile("/sim/machine.py", MACHINE_PY);
  mp.FS.writeFile("/sim/_rom.py", ROM_PY);
  mp.FS.writeFile("/sim/simnet.py", SIMNET_PY);
  mp.FS.writeFile("/sim/_hw.py", fs.readFileSync(path.join(HERE, "board_hw.py")));
  mp.FS.mkdir("/sim/hwsim");
  mp.FS.writeFile("/sim/hwsim/__init__.py", "");
  for (const name of fs.readdirSync(HW_SIM_DIR)) {
    if (name.endsWith(".py")) mp.FS.writeFile("/sim/hwsim/" + name, fs.readFileSync(path.join(HW_SIM_DIR, name)));
  }
  mp.registerJsModule("_simboard", simModule);
  loadFlash();
  mp.runPython(PRELUDE);
  resetRequested = false;
  try {
    mp.FS.stat("/boot.py");
    const [out, err] = execSource(mp.FS.readFile("/boot.py", { encoding: "utf8" }));
    send(out);
    send(err);
  } catch (error) {
    if (!error.errno) throw error; // no boot.py
  }
}

function execSource(source) {
  const out = [];
  let err = "";
  sink = out;
  try {
    mp.runPython(source);
  } catch (error) {
    if (error.name !== "PythonError") throw error;
    if (error.type !== "SystemExit") err = error.message.endsWith("\n") ? error.message : error.message + "\n";
  } finally {
    sink = null;
  }
  syncFlash();
  return [cooked(out), cooked(Buffer.from(err, "utf8"))];
}

// ---- the REPL state machine ------------------------------------------------------------------

let mode = "friendly"; // friendly | raw | rawpaste | paste
let line = [];
let pasteRemain = 0;

function runRaw(source) {
  const [out, err] = execSource(source);
  send(out);
  send("\x04");
  send(err);
  send("\x04");
}

function rawChar(c) {
  if (c === CTRL_A) {
    if (line.length === 2 && line[0] === CTRL_E) {
      if (line[1] !== 0x41) {
        send("R\x00");
      } else {
        send("R\x01");
        send(Buffer.from([RAW_PASTE_WINDOW & 0xff, RAW_PASTE_WINDOW >> 8, 0x01]));
        mode = "rawpaste";
        line = [];
        pasteRemain = RAW_PASTE_WINDOW;
        return null;
      }
    } else {
      send(RAW_BANNER);
    }
    line = [];
    send(">");
  } else if (c === CTRL_B) {
    mode = "friendly";
    line = [];
    send("\r\n" + BANNER + ">>> ");
  } else if (c === CTRL_C) {
    line = [];
  } else if (c === CTRL_D) {
    send("OK");
    if (line.length === 0) {
      send("\r\n");
      return "soft-reset";
    }
    const source = Buffer.from(line).toString("utf8");
    line = [];
    runRaw(source);
    if (resetRequested) return "hard-reset";
    send(">");
  } else {
    line.push(c);
  }
  return null;
}

function rawPasteChar(c) {
  if (c === CTRL_D || c === CTRL_C) {
    send("\x04"); // end of data acknowledged
    mode = "raw";
    const source = Buffer.from(line).toString("utf8");
    line = [];
    if (c === CTRL_C) {
      send("\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04");
    } else {
      runRaw(source);
      if (resetRequested) return "hard-reset";
    }
    send(">");
    return null;
  }
  line.push(c);
  if (--pasteRemain === 0) {
    send("\x01");
    pasteRemain = RAW_PASTE_WINDOW;
  }
  return null;
}

function runFriendly(source) {
  const [out, err] = execSource(source);
  send(out);
  send(err);
}

function friendlyChar(c) {
  if (mode === "paste") {
    if (c === CTRL_C) {
      send("\r\n>>> ");
      mode = "friendly";
      line = [];
    } else if (c === CTRL_D) {
      send("\r\n");
      mode = "friendly";
      const source = Buffer.from(line).toString("utf8");
      line = [];
      runFriendly(source);
      if (resetRequested) return "hard-reset";
      send(">>> ");
    } else {
      line.push(c);
      send(c === 0x0d ? "\r\n=== " : Buffer.from([c]));
    }
    return null;
  }
  if (c === CTRL_A) {
    mode = "raw";
    line = [];
    send("\r\n" + RAW_BANNER + ">");
  } else if (c === CTRL_B) {
    line = [];
    send("\r\n" + BANNER + ">>> ");
  } else if (c === CTRL_C) {
    line = [];
    send("\r\n>>> ");
  } else if (c === CTRL_D) {
    if (line.length === 0) {
      send("\r\n");
      return "soft-reset";
    }
  } else if (c === CTRL_E) {
    mode = "paste";
    line = [];
    send("\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ");
  } else if (c === 0x0d) {
    send("\r\n");
    const source = Buffer.from(line).toString("utf8");
    line = [];
    if (source.trim()) {
      runFriendly(source);
      if (resetRequested) return "hard-reset";
    }
    send(">>> ");
  } else if (c === 0x08 || c === 0x7f) {
    if (line.length) {
      line.pop();
      send("\x08 \x08");
    }
  } else if (c >= 0x20 || c === 0x09) {
    line.push(c);
    send(Buffer.from([c]));
  }
  return null;
}

async function softReset() {
  send("MPY: soft reboot\r\n");
  syncFlash();
  await boot();
  line = [];
  if (mode === "raw" || mode === "rawpaste") {
    mode = "raw";
    send(RAW_BANNER + ">");
  } else {
    mode = "friendly";
    send(BANNER + ">>> ");
  }
}

async function hardReset() {
  syncFlash();
  send("\r\nets Jul 29 2019 12:21:46\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n");
  mode = "friendly";
  line = [];
  await boot();
  send(BANNER + ">>> ");
}

const queue = [];
let pumping = false;

async function pump() {
  if (pumping) return;
  pumping = true;
  try {
    while (queue.length) {
      const c = queue.shift();
      const action = mode === "raw" ? rawChar(c) : mode === "rawpaste" ? rawPasteChar(c) : friendlyChar(c);
      if (action === "soft-reset") await softReset();
      else if (action === "hard-reset") await hardReset();
    }
  } finally {
    pumping = false;
  }
}

function shutdown(code) {
  try { if (mp) syncFlash(); } finally { process.exit(code); }
}

await boot();
process.on("SIGTERM", () => shutdown(0));
const input = new tty.ReadStream(fd);
input.on("data", (chunk) => {
  for (const b of chunk) queue.push(b);
  pump().catch((error) => {
    process.stderr.write(String(error.stack || error) + "\n");
    shutdown(1);
  });
});
input.on("error", () => shutdown(0));
input.on("end", () => shutdown(0));
process.stdout.write("ready\n");
