"""mpremote's own serial transport talks to the simulated board as to a real one."""

from __future__ import annotations

import calendar
import hashlib
from pathlib import Path

import pytest
import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from tests.provisioning.simboard.launcher import SimBoard


def connect(board: SimBoard, *, soft_reset: bool = True) -> SerialTransport:
    transport = SerialTransport(board.port, timeout=5)
    transport.enter_raw_repl(soft_reset=soft_reset)
    return transport


def test_mpremote_enters_raw_repl_and_runs_code_in_micropython(board):
    transport = connect(board)
    out = transport.exec("import sys\nprint(sys.implementation.name, 6 * 7)")
    assert out == b"micropython 42\r\n"
    assert transport.use_raw_paste, "the board answered the raw-paste negotiation"
    transport.close()


def test_an_exception_on_the_board_comes_back_on_stderr(board):
    transport = connect(board)
    with pytest.raises(TransportExecError, match="ZeroDivisionError"):
        transport.exec("1 / 0")
    assert transport.eval("1 + 1") == 2, "the raw REPL is still usable after an error"
    transport.close()


def test_plain_raw_repl_works_without_raw_paste(board):
    transport = connect(board, soft_reset=False)
    transport.use_raw_paste = False
    source = "x = " + repr("a" * 700) + "\nprint(len(x))"
    assert transport.exec(source) == b"700\r\n"
    transport.close()


def test_long_commands_cross_several_raw_paste_windows(board):
    transport = connect(board)
    source = "\n".join(f"v{i} = {i}" for i in range(400)) + "\nprint(v399 + v1)"
    assert len(source) > 10 * 128
    assert transport.exec(source) == b"400\r\n"
    transport.close()


def test_fs_put_get_and_hash(board):
    data = bytes(range(256)) * 9 + b"tail"
    transport = connect(board)
    transport.fs_mkdir("lib")
    transport.fs_writefile("lib/blob.bin", data)
    assert transport.fs_readfile("lib/blob.bin") == data
    assert transport.fs_hashfile("lib/blob.bin", "sha256") == hashlib.sha256(data).digest()
    assert transport.fs_stat("lib/blob.bin").st_size == len(data)
    assert "blob.bin" in [entry.name for entry in transport.fs_listdir("lib")]
    transport.close()
    assert (board.flash_dir / "lib" / "blob.bin").read_bytes() == data


def test_files_survive_a_soft_reset_and_a_new_plug(tmp_path: Path):
    with SimBoard(tmp_path / "b") as first:
        transport = connect(first)
        transport.fs_writefile("config.json", b'{"terminal_id": 7}')
        transport.exit_raw_repl()
        transport.enter_raw_repl(soft_reset=True)  # the heap is new, the flash is not
        assert transport.eval("open('config.json').read()") == '{"terminal_id": 7}'
        with pytest.raises(TransportExecError, match="NameError"):
            transport.exec("print(w)")  # globals of the previous boot are gone
        transport.close()
    with SimBoard(tmp_path / "b") as again:
        transport = connect(again)
        assert transport.eval("open('config.json').read()") == '{"terminal_id": 7}'
        transport.fs_rmfile("config.json")
        transport.close()
    assert not (tmp_path / "b" / "flash" / "config.json").exists()


def test_boot_py_runs_at_every_soft_reset(board):
    (board.flash_dir / "boot.py").write_text("import builtins\nbuiltins.BOOTED = 1\n")
    transport = connect(board)
    assert transport.eval("BOOTED") == 1
    transport.close()


def test_the_board_has_a_clock_an_rng_and_a_unique_id(board):
    transport = connect(board)
    transport.exec("import machine, os, time")
    transport.exec("machine.RTC().datetime((2031, 5, 6, 1, 7, 8, 9, 0))")
    assert transport.eval("machine.RTC().datetime()[:3]") == (2031, 5, 6)
    set_at = calendar.timegm((2031, 5, 6, 7, 8, 9))
    assert set_at <= transport.eval("time.time()") < set_at + 60
    assert transport.eval("len(os.urandom(32))") == 32
    assert transport.eval("os.urandom(16) != os.urandom(16)")
    assert len(transport.eval("machine.unique_id()")) == 6
    transport.close()


def test_friendly_repl_banner_and_back_to_raw(board):
    transport = connect(board)
    transport.exit_raw_repl()
    banner = transport.read_until(1, b">>> ", timeout=5)
    assert b"MicroPython v1.27.0" in banner
    transport.serial.write(b"print(3 * 3)\r")
    assert b"9\r\n>>> " in transport.read_until(1, b"9\r\n>>> ", timeout=5)
    transport.enter_raw_repl(soft_reset=False)
    assert transport.eval("2 ** 10") == 1024
    transport.close()


def test_an_unplugged_board_fails_the_next_read(board):
    transport = connect(board)
    board.unplug()
    with pytest.raises((TransportError, serial.SerialException, OSError)):
        transport.exec("print(1)")
    transport.serial.close()
