"""Runs at every reset, before main.py: counts the boot and decides whether it is a safe-mode
boot (caisse_terminal.health). MicroPython also runs it after a soft reset in the raw REPL
(provisioning), so it does nothing else: no watchdog, no waiting, never an exception.
"""

try:
    import machine

    from caisse_terminal.health import Health
    from caisse_terminal.storage import FileStorage

    Health(FileStorage("/data")).on_boot(machine.reset_cause() == machine.WDT_RESET)
except Exception as e:  # a boot is never stopped here: main.py still starts the terminal
    print("boot.py:", e)
