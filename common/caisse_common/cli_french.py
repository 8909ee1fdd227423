"""French for the `caisse` command line: Typer's own words, and every failure as one French line.

Typer (0.29) carries its own copy of Click, whose messages are English literals with no gettext
hook, so this module is the one place that reaches into it:

- help: the panel titles of `typer.rich_utils` (module constants read at each call), the usage
  prefix through the context's `formatter_class` (Click's extension point), and the `--help`
  option's sentence on each command of our tree (never on Typer's classes, so other apps are
  untouched);
- errors: the tree runs with `standalone_mode=False` (Click's documented way to handle its
  exceptions yourself) and each exception is told in French from its type and attributes; the
  few messages that carry their detail only as English text are matched by the patterns below.

tests/backend/cli/test_cli_french.py has a test per message: an upgrade of Typer that changes one
fails there, not in front of a person. Anything else that escapes a command is one French
sentence; its traceback goes to a log file, or to stderr with CAISSE_DEBUG=1.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer import rich_utils
from typer._click import core as click_core
from typer._click import exceptions as click_errors
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup, TyperOption

DEBUG_VARIABLE = "CAISSE_DEBUG"
HELP_OPTION_HELP = "Afficher ce message et quitter."
USAGE_PREFIX = "Utilisation : "
SUBCOMMAND_METAVAR = "COMMANDE [ARGUMENTS]..."
CHOICE_METAVAR = "<valeur>"
# Typer's own options, by parameter name.
TYPER_OPTIONS_HELP = {
    "install_completion": "Installer la complétion de la commande pour le shell courant.",
    "show_completion": "Afficher la complétion pour le shell courant, à copier ou adapter.",
}

# typer.rich_utils constant -> French. Checked to exist, so a renamed constant fails loudly.
RICH_LABELS = {
    "DEPRECATED_STRING": "(obsolète) ",
    "DEFAULT_STRING": "[par défaut : {}]",
    "ENVVAR_STRING": "[variable d'environnement : {}]",
    "REQUIRED_LONG_STRING": "[obligatoire]",
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commandes",
    "ERRORS_PANEL_TITLE": "Erreur",
    "ABORTED_TEXT": "Abandon.",
    "RICH_HELP": "Aide : [blue]{command_path} {help_option}[/]",
}

_err = Console(stderr=True, soft_wrap=True, highlight=False)


class FrenchHelpFormatter(HelpFormatter):
    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, USAGE_PREFIX if prefix is None else prefix)


class FrenchContext(click_core.Context):
    formatter_class = FrenchHelpFormatter


class FrenchTyper(typer.Typer):
    """A Typer app whose console script speaks French and never shows a traceback: calling it
    runs `run`. (typer.testing.CliRunner calls the command tree directly and stays as Typer is.)"""

    def __init__(self, *args: Any, prog_name: str = "caisse", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prog_name = prog_name

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        run(self, args=kwargs.get("args"), prog_name=kwargs.get("prog_name", self.prog_name))


def run(app: typer.Typer, *, args: Sequence[str] | None = None, prog_name: str = "caisse") -> NoReturn:
    sys.exit(exit_code(app, args=args, prog_name=prog_name))


def exit_code(app: typer.Typer, *, args: Sequence[str] | None = None, prog_name: str = "caisse") -> int:
    """Run the app's command line in French and return its exit status; nothing escapes but SystemExit."""
    try:
        command = typer.main.get_command(app)
        localize(command)
        result = command.main(args=list(sys.argv[1:] if args is None else args), prog_name=prog_name,
                              standalone_mode=False)
    except click_errors.NoArgsIsHelpError as shown:
        typer.echo(shown.ctx.get_help())
        return shown.exit_code
    except click_errors.ClickException as error:
        say(usage_error(error))
        return error.exit_code
    except typer.Abort:
        say("abandon : rien n'a été fait de plus.")
        return 1
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as error:
        return unexpected(error)
    if result == 130:  # Typer turns Ctrl-C inside a command into Exit(130)
        return _interrupted()
    return result if isinstance(result, int) else 0


def _interrupted() -> int:
    say("commande interrompue (Ctrl-C) ; relancez-la pour la terminer.")
    return 130


def say(sentence: str) -> None:
    """One line on stderr, `Erreur :` in red, the sentence as plain text (never Rich markup)."""
    _err.print(f"[red]Erreur :[/red] {escape(sentence)}")


def localize(command: click_core.Command) -> None:
    """French labels for the help of `command` and every command below it."""
    for name, text in RICH_LABELS.items():
        if not hasattr(rich_utils, name):
            raise RuntimeError(f"typer.rich_utils.{name} is gone: update caisse_common.cli_french")
        setattr(rich_utils, name, text)
    for each in _walk(command):
        each.context_class = FrenchContext
        help_option = each.get_help_option(FrenchContext(each))  # built once, then cached on the command
        if help_option is not None:
            help_option.help = HELP_OPTION_HELP
        for param in each.params:
            if isinstance(param, TyperOption):
                param.help = TYPER_OPTIONS_HELP.get(param.name or "", param.help)
        if isinstance(each, TyperGroup):
            each.subcommand_metavar = SUBCOMMAND_METAVAR


def _walk(command: click_core.Command) -> Iterator[click_core.Command]:
    yield command
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            yield from _walk(sub)


# --- usage errors ---------------------------------------------------------------------------

def usage_error(error: click_errors.ClickException) -> str:
    """The French sentence for a Click exception, with where to find help when there is a command."""
    sentence = _usage_sentence(error)
    ctx = getattr(error, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        sentence += f" Aide : {ctx.command_path} {ctx.help_option_names[0]}"
    return sentence


def _usage_sentence(error: click_errors.ClickException) -> str:
    if isinstance(error, click_errors.MissingParameter):
        param = error.param
        if param is not None and param.param_type_name == "argument":
            return f"il manque l'argument {_param_name(param)}."
        return f"il manque l'option {_param_name(param)}." if param is not None else "il manque une valeur."
    if isinstance(error, click_errors.BadParameter):
        where = f" pour {_param_name(error.param)}" if error.param is not None else ""
        return f"valeur refusée{where} : {_bad_value_reason(error)}"
    if isinstance(error, click_errors.NoSuchOption):
        sentence = f"l'option {error.option_name} n'existe pas."
        if error.possibilities:
            sentence += f" Vouliez-vous dire {' ou '.join(sorted(error.possibilities))} ?"
        return sentence
    if isinstance(error, click_errors.BadOptionUsage):
        if _OPTION_NEEDS_VALUE.fullmatch(error.message):
            return f"l'option {error.option_name} attend une valeur."
        if _OPTION_TAKES_NO_VALUE.fullmatch(error.message):
            return f"l'option {error.option_name} ne prend pas de valeur."
        return f"l'option {error.option_name} est mal employée."
    if isinstance(error, click_errors.FileError):
        return f"impossible d'ouvrir le fichier {error.ui_filename}."
    if match := _NO_SUCH_COMMAND.fullmatch(error.message):
        sentence = f"la commande « {match['name']} » n'existe pas."
        if match["suggestions"]:
            sentence += f" Vouliez-vous dire {match['suggestions'].replace(', ', ' ou ')} ?"
        return sentence
    if error.message == "Missing command.":
        return "il manque la commande."
    if match := _EXTRA_ARGUMENTS.fullmatch(error.message):
        return f"argument(s) en trop : {match['extra']}."
    return "ligne de commande incorrecte."


def _param_name(param: Any) -> str:
    """--name for an option, NAME for an argument, as the help shows them."""
    if param.param_type_name == "option" and param.opts:
        return max(param.opts, key=len)
    return (param.metavar or param.name or "?").upper()


_NO_SUCH_COMMAND = re.compile(r"No such command '(?P<name>.*)'\.(?: Did you mean (?P<suggestions>.+)\?)?", re.S)
_EXTRA_ARGUMENTS = re.compile(r"Got unexpected extra argument\(s\) \((?P<extra>.*)\)", re.S)
_OPTION_NEEDS_VALUE = re.compile(r"Option '.*' requires (?:an argument|\d+ arguments)\.", re.S)
_OPTION_TAKES_NO_VALUE = re.compile(r"Option '.*' does not take a value\.", re.S)
# Typer's path checks (typer/_param_types.py): "<Label> '<path>' <problem>."
_PATH_PROBLEM = re.compile(r"\w+ '(?P<path>.*)' (?P<problem>does not exist|is a file|is a directory|is not readable"
                           r"|is not writable)\.", re.S)
_PATH_PROBLEMS_FR = {
    "does not exist": "« {path} » n'existe pas",
    "is a file": "« {path} » est un fichier, un dossier est attendu",
    "is a directory": "« {path} » est un dossier, un fichier est attendu",
    "is not readable": "« {path} » ne peut pas être lu (droits)",
    "is not writable": "« {path} » ne peut pas être écrit (droits)",
}
_CHOICE = re.compile(r"'(?P<value>.*)' is not one of (?P<choices>.*)\.", re.S)
# pydantic's error types (stable identifiers, unlike its English messages) -> what was expected.
PYDANTIC_EXPECTED_FR = {
    "int_parsing": "un nombre entier est attendu",
    "int_from_float": "un nombre entier est attendu",
    "float_parsing": "un nombre est attendu",
    "bool_parsing": "oui ou non est attendu (true/false, 1/0)",
    "date_from_datetime_parsing": "une date AAAA-MM-JJ est attendue",
    "date_parsing": "une date AAAA-MM-JJ est attendue",
    "datetime_from_date_parsing": "une date et une heure sont attendues",
    "datetime_parsing": "une date et une heure sont attendues",
    "string_too_long": "le texte est trop long",
    "greater_than_equal": "la valeur est trop petite",
    "less_than_equal": "la valeur est trop grande",
}


def _bad_value_reason(error: click_errors.BadParameter) -> str:
    from pydantic import ValidationError

    cause = error.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        first = cause.errors()[0]
        raised = str(first.get("ctx", {}).get("error", ""))  # Typer's choice check raises inside pydantic
        if first["type"] == "value_error" and (match := _CHOICE.fullmatch(raised)):
            return f"« {match['value']} » n'est pas l'une des valeurs {match['choices']}."
        expected = PYDANTIC_EXPECTED_FR.get(first["type"], "cette valeur n'est pas acceptée")
        return f"« {first.get('input')} » : {expected}."
    if match := _PATH_PROBLEM.fullmatch(error.message):
        return _PATH_PROBLEMS_FR[match["problem"]].format(path=match["path"]) + "."
    if not _looks_english(error.message):  # our own parsers raise French BadParameters
        return error.message
    return "cette valeur n'est pas acceptée."


_ENGLISH_WORDS = frozenset("the is not an of for value valid should be must input".split())


def _looks_english(text: str) -> bool:
    return bool(_ENGLISH_WORDS & set(re.findall(r"[a-z]+", text.lower())))


# --- everything else ------------------------------------------------------------------------

OS_ERRORS_FR = {
    errno.EACCES: "accès refusé",
    errno.EPERM: "opération non permise",
    errno.ENOENT: "fichier ou dossier introuvable",
    errno.EISDIR: "c'est un dossier, pas un fichier",
    errno.ENOTDIR: "un élément du chemin n'est pas un dossier",
    errno.ENOSPC: "disque plein",
    errno.EROFS: "système de fichiers en lecture seule",
    errno.EEXIST: "existe déjà",
    errno.ECONNREFUSED: "connexion refusée",
    errno.ETIMEDOUT: "délai dépassé",
}


def unexpected(error: BaseException, *, during: str | None = None) -> int:
    """One French sentence for an exception no command expected (`during` what, if given); the
    traceback for developers: after the sentence with CAISSE_DEBUG=1, else in the user's error log.
    Returns the exit status, 1."""
    sentence = describe(error) if during is None else f"{during} : {describe(error)}"
    trace = "".join(traceback.format_exception(error))
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        say(f"{sentence} Trace ci-dessous.")
        sys.stderr.write(trace)
    else:
        say(f"{sentence} {_log(trace)}")
    return 1


def describe(error: BaseException) -> str:
    """What went wrong, in French, without the library's English."""
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    if isinstance(error, UnicodeError):
        return "un fichier n'est pas du texte lisible (encodage attendu : UTF-8)."
    if isinstance(error, OSError):
        what = OS_ERRORS_FR.get(error.errno or 0, "erreur du système")
        return f"{what} : {error.filename}." if error.filename else f"{what}."
    if isinstance(error, OperationalError):
        return "la base de données ne répond pas ou refuse la connexion."
    if isinstance(error, SQLAlchemyError):
        return "la base de données a refusé l'opération ; rien n'a été enregistré par cette opération."
    if isinstance(error, ValidationError):
        return "réglages ou valeurs invalides."
    return "erreur inattendue ; la commande s'est arrêtée."


def _log(trace: str) -> str:
    """Append the traceback to the error log; the sentence that says where it went."""
    log = error_log_path()
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", encoding="utf-8") as file:
            file.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} caisse {' '.join(sys.argv[1:])}\n{trace}")
    except OSError:
        return f"Pour le détail : relancez avec {DEBUG_VARIABLE}=1."
    return f"Détail pour les développeurs : {log}"


def error_log_path() -> Path:
    """Per user (tracebacks may quote data), in Click's application folder (~/.config/caisse on Linux)."""
    return Path(typer.get_app_dir("caisse")) / "erreurs.log"


def technical_detail(error: BaseException) -> str:
    """The library's own message, shown only to developers (CAISSE_DEBUG=1)."""
    if os.environ.get(DEBUG_VARIABLE, "") in ("", "0"):
        return ""
    return f" ({type(error).__name__} : {str(getattr(error, 'orig', None) or error).strip().splitlines()[0]})"


# --- questions ------------------------------------------------------------------------------

YES, NO = ("o", "oui", "y", "yes"), ("n", "non", "no")


def confirm(question: str, *, default: bool = False) -> bool:
    """A yes/no question answered o/n (y/n still understood); Typer's own asks y/n in English."""
    while True:
        answer = typer.prompt(f"{question} [{'O/n' if default else 'o/N'}]", default="", show_default=False)
        answer = answer.strip().lower()
        if not answer or answer in YES + NO:
            return default if not answer else answer in YES
        typer.echo("Répondez o (oui) ou n (non).", err=True)


def ask_twice(text: str, *, again: str = "Encore une fois", hide_input: bool = True) -> str:
    """A value typed twice (a code, a password) until both agree; Typer's own says so in English."""
    while True:
        first = typer.prompt(text, hide_input=hide_input)
        if typer.prompt(again, hide_input=hide_input) == first:
            return first
        typer.echo("Les deux saisies diffèrent : recommencez.", err=True)


# --- option values --------------------------------------------------------------------------

class Choices:
    """A closed set of option values named in French, the old English names still accepted.

    `values` maps each French name to the value the services use (often the old English name).
    Matching ignores case and accents, so `volee` is `volée`. Use `option(...)` to declare it.
    """

    def __init__(self, values: Mapping[str, str], *, aliases: Mapping[str, str] | None = None) -> None:
        self.values = dict(values)
        self._lookup = {_fold(french): code for french, code in self.values.items()}
        for code in self.values.values():
            self._lookup.setdefault(_fold(code), code)
        for alias, code in (aliases or {}).items():
            self._lookup.setdefault(_fold(alias), code)

    def parse(self, text: str) -> str:
        try:
            return self._lookup[_fold(text)]
        except KeyError:
            raise typer.BadParameter(f"« {text} » n'est pas l'une des valeurs {', '.join(self.values)}.") from None

    def option(self, *names: str, help: str, **kwargs: Any) -> Any:  # noqa: A002 (typer's name)
        """A typer.Option taking these values; the help shows the French names."""
        return typer.Option(*names, help=f"{help} Valeurs : {', '.join(self.values)}.", parser=self.parse,
                            metavar=CHOICE_METAVAR, **kwargs)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace(" ", "_").replace("-", "_")
