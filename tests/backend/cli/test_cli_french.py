"""The `caisse` command as a person meets it: French help, French usage errors, one French line
for every failure, never a traceback, and no money command that works on a database it made up.

Runs the console script's own path (caisse_common.cli_french.exit_code, what `caisse` calls) in process.
A Typer upgrade that changes one of its messages fails a test here.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import pytest
import typer

from caisse.cli.choices import ALLOWANCE_RULE, ALLOWANCE_UNSPENT, BLOCK_REASON, CARD_TYPE, ROLE, VENDOR_KIND
from caisse.cli.main import app
from caisse.settlement import runs as settlement
from caisse_common import cli_french
from caisse_common.cli_french import Choices, exit_code
from tests.backend.factories import staff_in_database
from tests.fixtures.database import POSTGRES_URL

# What Typer prints in English when nothing translates it.
ENGLISH_CLICK = ("Usage:", "Options:", "Commands", "Show this message", "Missing option", "Missing argument",
                 "Invalid value", "No such command", "No such option", "Error", "Try '", "for help", "Aborted",
                 "Traceback", "default:", "required]", "does not exist", "Did you mean")

Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def caisse(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    """`caisse ARGS` as the console script runs it: (exit status, stdout, stderr); in a folder of
    its own, in development, tracebacks logged under the test's folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")  # Rich reads it: no sentence cut across lines of a help panel
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CAISSE_DATABASE_URL", raising=False)
    monkeypatch.delenv(cli_french.DEBUG_VARIABLE, raising=False)

    def invoke(*args: str, command: typer.Typer = app) -> tuple[int, str, str]:
        capsys.readouterr()
        code = exit_code(command, args=list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _one_french_line(stderr: str) -> str:
    """The single line a failure prints, checked to carry no Typer English and no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Erreur :"), stderr
    assert not [english for english in ENGLISH_CLICK if english in stderr], stderr
    return lines[0]


# Help -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(), ("--help",), ("db", "--help"), ("serve", "--help"), ("simulate", "--help"),
                                  ("verify", "--help"), ("card", "block", "--help"), ("terminal", "register", "--help")])
def test_the_help_speaks_french(caisse: Invoke, args: tuple[str, ...]) -> None:
    code, out, _ = caisse(*args)
    assert code == (2 if not args else 0)  # no command at all is a usage error that shows the help
    assert "Utilisation : caisse" in out and "Afficher ce message et quitter." in out
    assert not [english for english in ENGLISH_CLICK if english in out], out
    if not args:
        assert "Commandes" in out and "COMMANDE [ARGUMENTS]..." in out


ENGLISH_WORDS = frozenset(
    "the and with for from when this that is are not your which will show error missing invalid default required "
    "each every only prints print into its then of to by be if it an".split())


def _command_paths(command: typer.Typer) -> Iterator[tuple[str, ...]]:
    from typer.core import TyperGroup

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(command), ())


def _english_words(help_text: str) -> set[str]:
    prose = re.sub(r"--?[\w-]+|\b[A-Z][A-Z0-9_]{2,}\b|<[^>]*>|\S+\.(?:md|py|csv|xml)\b", " ", help_text)
    return set(ENGLISH_WORDS & set(re.findall(r"[a-z]+", prose.lower())))


def test_every_command_help_is_french(caisse: Invoke) -> None:
    from caisse_provisioning.cli import app as technician_app  # the technician's own command, caisse-technicien

    checked = 0
    for command, path in [*((app, p) for p in _command_paths(app)),
                          *((technician_app, p) for p in _command_paths(technician_app))]:
        code, out, err = caisse(*path, "--help", command=command)
        assert code == 0, err
        rows = [line.replace("│", " ").split() for line in out.splitlines()]
        shown = "\n".join(" ".join(words[1:] if line.startswith("│") else words)  # a row's name (show, set) is not prose
                          for line, words in zip(out.splitlines(), rows, strict=True))
        english = _english_words(shown) - set(path)  # the command's own name (show) in its usage line
        assert not english, f"caisse {' '.join(path)} --help: {english}\n{shown}"
        checked += 1
    assert checked >= 12  # the walk found the commands


# Usage errors ---------------------------------------------------------------------------------

USAGE_ERRORS = [  # (arguments, the sentence, the command whose help it names; None when the parser knows none)
    (("serve", "--port", "abc"), "valeur refusée pour --port : « abc » : un nombre entier est attendu.", "serve"),
    (("vendor", "add", "--kind", "épicerie", "--zone", "Sud"), "il manque l'option --name.", "vendor add"),
    (("card", "show"), "il manque l'argument UID.", "card show"),
    (("nope",), "la commande « nope » n'existe pas.", ""),
    (("serv",), "la commande « serv » n'existe pas. Vouliez-vous dire 'serve'", ""),
    (("serve", "--nope"), "l'option --nope n'existe pas.", "serve"),
    (("serve", "--hos", "x"), "l'option --hos n'existe pas. Vouliez-vous dire --host ?", "serve"),
    (("serve", "--port"), "l'option --port attend une valeur.", None),
    (("simulate", "--json=oui"), "l'option --json ne prend pas de valeur.", None),
    (("close-month", "2026-01", "en-trop", "--by", "a@caisse.fr"), "argument(s) en trop : en-trop.", "close-month"),
    (("fund", "import", "absent.csv"), "valeur refusée pour PATH : « absent.csv » n'existe pas.", "fund import"),
    (("fund", "import", "."), "« . » est un dossier, un fichier est attendu.", "fund import"),
    (("simulate", "--firmware-runtime", "java"), "« java » n'est pas l'une des valeurs cpython, micropython.", "simulate"),
]


@pytest.mark.parametrize(("args", "sentence", "command"), USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_french_line_with_where_to_find_help(caisse: Invoke, args: tuple[str, ...], sentence: str,
                                                                   command: str | None) -> None:
    code, out, err = caisse(*args)
    assert (code, out) == (2, "")
    line = _one_french_line(err)
    assert sentence in line
    if command is not None:
        assert line.endswith(f" Aide : {' '.join(('caisse', command)).strip()} --help")
    else:
        assert "Aide" not in line


def test_a_group_without_its_command_shows_its_help(caisse: Invoke) -> None:
    code, out, err = caisse("db")
    assert (code, err) == (2, "")
    assert "Utilisation : caisse db [OPTIONS] COMMANDE [ARGUMENTS]..." in out and "upgrade" in out


# Failures -------------------------------------------------------------------------------------

def test_no_money_command_creates_a_database_or_reports_success_without_one(caisse: Invoke, tmp_path: Path) -> None:
    for args in (("settle",), ("settle-approve", "1", "--by", "t@caisse.fr"), ("allocate", "--month", "2026-01", "--by", "a@caisse.fr"),
                 ("close-month", "2026-01", "--by", "a@caisse.fr"), ("fund", "match", "--month", "2026-01", "--by", "a@caisse.fr"),
                 ("review", "list"),
                 ("banque", "retours"), ("ledger", "reverse", "cotisation:1", "--by", "a@caisse.fr", "--reason", "x"),
                 ("budget", "--month", "2026-01"), ("verify",), ("db", "sauvegarder"),
                 ("member", "add", "--name", "X", "--members", "1", "--zone", "Sud")):
        code, out, err = caisse(*args)
        assert (code, out) == (2, ""), args
        assert "la base de données ./caisse.db n'existe pas (rien n'a été créé)" in _one_french_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing at all: no database, no settlement folder


def test_the_console_script_in_an_empty_folder_refuses_to_settle_and_leaves_nothing(
        caisse: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["caisse", "settle"])
    with pytest.raises(SystemExit) as stopped:
        app()  # what the `caisse` script does (pyproject: caisse = "caisse.cli.main:app")
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "la base de données ./caisse.db n'existe pas" in _one_french_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def migrated(caisse: Invoke, cli_database: str) -> str:
    return cli_database


def test_an_unwritable_statements_folder_is_one_french_line_and_the_traceback_goes_to_the_log(
        caisse: Invoke, migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "un-fichier").write_text("pas un dossier")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", str(tmp_path / "un-fichier" / "reglements"))  # fails even as root
    code, _, err = caisse("settle", "--date", "2026-01-05")
    assert code == 1
    line = _one_french_line(err)
    assert "un élément du chemin n'est pas un dossier" in line
    log = tmp_path / "config" / "caisse" / "erreurs.log"
    assert line.endswith(f"Détail pour les développeurs : {log}")
    assert "Traceback" in log.read_text(encoding="utf-8") and "NotADirectoryError" in log.read_text(encoding="utf-8")
    assert log.stat().st_mode & 0o077 == 0  # tracebacks may quote data: the user's eyes only


def test_caisse_debug_prints_the_traceback_after_the_french_line(caisse: Invoke, migrated: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli_french.DEBUG_VARIABLE, "1")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", "/dev/null/reglements")
    code, _, err = caisse("settle", "--date", "2026-01-05")
    assert code == 1
    assert err.startswith("Erreur : un élément du chemin n'est pas un dossier") and "Trace ci-dessous." in err
    assert "Traceback (most recent call last)" in err
    assert not (tmp_path / "config").exists()


def test_a_file_that_is_not_a_sheet_is_one_french_line(caisse: Invoke, migrated: str, tmp_path: Path) -> None:
    """Any bytes decode (Windows-1252 is the fallback of caisse.spreadsheet): a picture given for
    the contributions' sheet is refused for its missing columns, in one French line."""
    staff_in_database(migrated, "tresorerie@caisse.fr")
    (tmp_path / "cotisations.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    code, _, err = caisse("fund", "import", "cotisations.csv", "--by", "tresorerie@caisse.fr")
    assert code == 1
    assert "colonne(s) manquante(s)" in _one_french_line(err)


def test_a_refused_production_setting_is_french_and_stops(caisse: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "production")
    code, out, err = caisse("settle")
    assert (code, out) == (2, "")
    assert err.startswith("Erreur de configuration :") and "CAISSE_ADMIN_TOKEN" in err
    assert not [english for english in ENGLISH_CLICK if english in err]


def test_a_database_server_out_of_reach_is_one_french_line(caisse: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_DATABASE_URL", "postgresql+psycopg://caisse:secret@127.0.0.1:9/caisse?connect_timeout=2")
    code, _, err = caisse("review", "list")
    assert code == 2
    line = _one_french_line(err)
    assert "impossible de lire la base de données" in line and "serveur arrêté" in line and "secret" not in line


@pytest.mark.skipif(not os.environ.get("CI"), reason="needs the PostgreSQL server (CI)")
def test_a_postgresql_database_without_the_schema_is_missing(caisse: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"{POSTGRES_URL}?options=-csearch_path%3Dcaisse_absent_{os.getpid()}")
    code, _, err = caisse("allocate", "--month", "2026-01", "--by", "a@caisse.fr")
    assert code == 2
    assert "ne contient pas de caisse (aucune migration appliquée)" in _one_french_line(err)


def test_ctrl_c_is_one_french_line(caisse: Invoke, migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(settlement, "settle", interrupted)
    code, _, err = caisse("settle", "--date", "2026-01-05")
    assert code == 130
    assert "commande interrompue (Ctrl-C)" in _one_french_line(err)


def test_an_unexpected_error_names_no_library_english(caisse: Invoke, migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("internal detail in English")

    monkeypatch.setattr(settlement, "settle", broken)
    code, _, err = caisse("settle", "--date", "2026-01-05")
    assert code == 1
    line = _one_french_line(err)
    assert "erreur inattendue ; la commande s'est arrêtée." in line and "internal detail" not in line


# Option values --------------------------------------------------------------------------------

def test_a_choice_takes_its_french_name_its_old_english_code_and_ignores_case_and_accents() -> None:
    assert BLOCK_REASON.parse("volée") == BLOCK_REASON.parse("VOLEE") == BLOCK_REASON.parse("stolen") == "stolen"
    assert VENDOR_KIND.parse("Étal") == VENDOR_KIND.parse("market_stall") == VENDOR_KIND.parse("market-stall") == "market_stall"
    with pytest.raises(typer.BadParameter, match="« remplacée » n'est pas l'une des valeurs perdue, volée"):
        BLOCK_REASON.parse("remplacée")  # set by the services, never given by staff


def test_every_choice_names_each_code_once_in_french() -> None:
    for choices in (VENDOR_KIND, CARD_TYPE, BLOCK_REASON, ROLE, ALLOWANCE_RULE, ALLOWANCE_UNSPENT):
        codes = list(choices.values.values())
        assert len(set(codes)) == len(codes)
        assert all(choices.parse(french) == code and choices.parse(code) == code for french, code in choices.values.items())


# A small app for what the caisse's own commands do not declare (yet): each Typer message once.
_REASON = Choices({"perdue": "lost", "volée": "stolen"})
_chosen: list[str] = []
_demo = cli_french.FrenchTyper()
_demo_group = typer.Typer()  # without no_args_is_help: Typer's "Missing command."
_demo.add_typer(_demo_group, name="groupe")


@_demo.command("block")
def _block(why: Annotated[str, _REASON.option("--motif", help="Pourquoi.")] = "perdue") -> None:
    _chosen.append(why)


@_demo.command("pick")
def _pick(mode: Annotated[Literal["a", "b"], typer.Option()] = "a",
          count: Annotated[int, typer.Option(min=1, max=5)] = 1) -> None:
    pass


@_demo.command("folder")
def _folder(where: Annotated[Path, typer.Argument(exists=True, file_okay=False)]) -> None:
    pass


@_demo.command("question")
def _question() -> None:
    cli_french.confirm("Continuer ?")


@_demo_group.command("un")
def _one() -> None:
    pass


@_demo_group.command("deux")
def _two() -> None:
    pass


def test_a_choice_option_shows_the_french_names_and_takes_a_french_default(capsys: pytest.CaptureFixture[str]) -> None:
    _chosen.clear()
    assert exit_code(_demo, args=["block"]) == 0
    assert exit_code(_demo, args=["block", "--motif", "VOLEE"]) == 0
    assert exit_code(_demo, args=["block", "--help"]) == 0
    assert _chosen == ["lost", "stolen"]
    help_text = capsys.readouterr().out
    assert "Valeurs : perdue, volée." in help_text and "[par défaut : perdue]" in help_text


@pytest.mark.parametrize(("args", "sentence"), [
    (("pick", "--mode", "c"), "valeur refusée pour --mode : « c » n'est pas l'une des valeurs 'a', 'b'."),
    (("pick", "--count", "9"), "valeur refusée pour --count : « 9 » : la valeur est trop grande."),
    (("pick", "--count", "0"), "valeur refusée pour --count : « 0 » : la valeur est trop petite."),
    (("folder", "un-fichier"), "valeur refusée pour WHERE : « un-fichier » est un fichier, un dossier est attendu."),
    (("groupe",), "il manque la commande. Aide : caisse groupe --help"),
])
def test_typer_messages_the_caisse_does_not_trigger_yet_are_french(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        args: tuple[str, ...], sentence: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "un-fichier").write_text("")
    capsys.readouterr()
    assert exit_code(_demo, args=list(args)) == 2
    assert sentence in _one_french_line(capsys.readouterr().err)


# Questions ------------------------------------------------------------------------------------

def test_a_question_left_unanswered_aborts_in_one_french_line(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # end of input, as Ctrl-D
    assert exit_code(_demo, args=["question"]) == 1
    assert "abandon : rien n'a été fait de plus." in _one_french_line(capsys.readouterr().err)


def test_a_question_is_answered_in_french_and_a_wrong_answer_asked_again(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("peut-être\noui\n\nN\ny\n"))
    assert [cli_french.confirm("Garder la clé ?") for _ in range(4)] == [True, False, False, True]
    out, err = capsys.readouterr()
    assert "Garder la clé ? [o/N]" in out and "y/N" not in out
    assert err.strip() == "Répondez o (oui) ou n (non)."


def test_a_code_typed_twice_differently_is_asked_again_in_french(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("1234\n1243\n4321\n4321\n"))
    assert cli_french.ask_twice("Code du foyer", hide_input=False) == "4321"
    out, err = capsys.readouterr()
    assert out.count("Encore une fois") == 2 and "Repeat" not in out
    assert err.strip() == "Les deux saisies diffèrent : recommencez."


def test_a_simulation_that_crashes_names_its_seed_in_its_one_line(caisse: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from caisse import simulation

    def crash(_config: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(simulation, "simulate", crash)
    code, _, err = caisse("simulate", "--seed", "7")
    assert code == 1
    assert "simulation, graine 7 : erreur inattendue" in _one_french_line(err)
