# The terminal firmware frozen into the ESP32 MicroPython image (docs/firmware.md, "Frozen image").
#
# From ports/esp32 of a MicroPython checkout (v1.27, ESP-IDF installed and exported):
#     make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/caisse/image/manifest.py
#
# Frozen, a module's bytecode, constants and names stay in flash; importing it puts only its
# dict, functions and classes on the heap (docs/performance.md, "Heap"). Every .py under
# firmware/ is listed (tests/firmware/test_manifest.py checks it): main.py and boot.py too, which
# MicroPython runs from the frozen image before any copy on the filesystem.

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)

package("caisse_terminal", base_path="../firmware")
package("drivers", base_path="../firmware")
module("board.py", base_path="../firmware")
module("boot.py", base_path="../firmware")
module("main.py", base_path="../firmware")
module("selftest.py", base_path="../firmware")
