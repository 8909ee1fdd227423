// Run Python in the real MicroPython runtime (WebAssembly port) step by step, measuring the heap.
//
//   node tests/firmware/mp_steps.mjs PLAN.json
//
// PLAN: {"heap": bytes, "mounts": [[hostDir, target], ...], "setup": code, "steps": [{"name", "code"}]}
// The port grows its heap on demand and collects only between runPython calls, never inside one,
// so each step is its own call: before it, gc.collect() then gc.mem_alloc() (what is live); at
// its end, in the same call, gc.mem_alloc() again: everything the step allocated, garbage
// included, is counted (a bound on the step's peak). A step whose code leaves `__more` true runs again (a generator
// driven one step at a time). `__excess[0]` is what Python stand-ins for the ESP32's C modules
// allocated beyond what the C module would (the setup installs them); it is taken off the peak.
// Interned strings (qstrs) are left out of every figure: the firmware's are in flash once frozen,
// where this port interns them in RAM pools as it compiles (a pool, allocated when one fills, is
// twice the last), so each reading takes off the bytes `micropython.qstr_info()` reports.
// Prints one JSON line: [{"name", "runs": [[live_before, at_end, excess], ...]}, ...], then the
// step's stdout lines are printed before it as they come.
import fs from "node:fs";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { copyTree } from "../../backend/caisse/simulation/mp_fs.mjs";

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = [];
let qstrBytes = 0;  // the last `micropython.qstr_info()`: bytes of the qstr pools in RAM
const mp = await loadMicroPython({
  heapsize: plan.heap || 256 * 1024,
  stdout: (line) => {
    const q = /^qstr pool: .*n_total_bytes=(\d+)/.exec(line);
    if (q) qstrBytes = parseInt(q[1], 10);
    else process.stdout.write(line + "\n");
  },
  stderr: (line) => process.stderr.write(line + "\n"),
});

for (const [hostDir, target] of plan.mounts || []) copyTree(mp, hostDir, target);

function python(code, what) {
  try {
    mp.runPython(code);
  } catch (error) {
    process.stderr.write(`${what}: ${error.message || error}\n`);
    process.exit(1);
  }
}

python("import gc, micropython\n__excess = [0]\n__more = False\n__m0 = 0\n__m1 = 0\n__ex = 0\n" + (plan.setup || ""), "setup");

for (const step of plan.steps) {
  const runs = [];
  do {
    // The port collects at the boundary of runPython calls: collect, then read in the next call.
    python("gc.collect()\n__more = False\n__excess[0] = 0", step.name);
    python("__m0 = gc.mem_alloc()\nmicropython.qstr_info()", step.name);
    const q0 = qstrBytes;
    python(step.code + "\n__m1 = gc.mem_alloc()\n__ex = __excess[0]\nmicropython.qstr_info()", step.name);
    runs.push([mp.globals.get("__m0") - q0, mp.globals.get("__m1") - qstrBytes, mp.globals.get("__ex")]);
    if (runs.length > 100000) { process.stderr.write(`${step.name}: runs forever\n`); process.exit(1); }
  } while (mp.globals.get("__more"));
  out.push({ name: step.name, runs });
}
python("gc.collect()", "end");
python("__m0 = gc.mem_alloc()\nmicropython.qstr_info()", "end");
out.push({ name: "end", runs: [[mp.globals.get("__m0") - qstrBytes, mp.globals.get("__m0") - qstrBytes, 0]] });
process.stdout.write("@@STEPS@@" + JSON.stringify(out) + "\n");
process.exit(0);
