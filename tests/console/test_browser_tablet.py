"""Every console page on a tablet held upright (768×1024) in real Chromium: nothing wider than the
screen, nothing cut off at its right edge, and no table scrolling sideways.

PAGES is the list to extend when a page is added: a path, with `{name}` for an id of what
`_seed` made. One browser context visits them all, signed in as the admin (every page is theirs).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from caisse.db import session_factory
from caisse.members import sortition
from caisse.models import Card, ConsoleUser, Household, Role, TerminalHealth
from caisse.settlement import runs as settlement
from tests.backend.settlement.test_settlement import Market
from tests.console.conftest import EMAILS, screenshot
from tests.fixtures.database import make_settings

TABLET = {"width": 768, "height": 1024}
PAY_DAY = "2026-04-21"  # a day no other browser test settles
PAGES = (
    "/console",
    "/console/households",
    "/console/households/new",
    "/console/households/{household}",
    "/console/vendors",
    "/console/vendors/new",
    "/console/vendors/{vendor}",
    "/console/terminals",
    "/console/terminals/{terminal}",
    "/console/transactions",
    "/console/settlements",
    "/console/settlements/{run}",
    "/console/budget?du=2026-01&au=2026-12",
    "/console/flows?du=2026-01&au=2026-12",
    "/console/fund",
    "/console/sortition",
    "/console/sortition/{draw}",
    "/console/audit",
    "/console/cards",
    "/console/cards/{card}",
    "/console/cards/{card}/block?reason=stolen",
    "/console/terminals/{terminal}/revoke",
    "/console/vendors/{vendor}/iban",
    "/console/users",
    "/console/users/{user}",
    "/console/users/{user}/reset",
    "/console/password",
)

SHOWN = ("/console/terminals", "/console/transactions", "/console/budget?du=2026-01&au=2026-12",
         "/console/flows?du=2026-01&au=2026-12")  # kept as pictures (test-artifacts/console)

# The visible elements whose right edge passes the viewport's, as "tag.class: right edge", the
# tables and frames wider than their box (they would scroll sideways) and the document's own
# overflow, in one evaluation. What waits behind a closed <details> or an unticked "Toutes les
# colonnes" box is not shown, so not measured: it may scroll in its frame once asked for.
_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const element of document.body.querySelectorAll('*')) {
    if (!element.checkVisibility({visibilityProperty: true})) continue;  // in a closed <details> too
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 0.5) out.push(`${element.tagName.toLowerCase()}.${element.className}: ${Math.round(box.right)}`);
  }
  const scrolling = [...document.querySelectorAll('.table-wrap, table, nav')].filter(
    (element) => element.checkVisibility() && element.scrollWidth > element.clientWidth + 1).map((element) => element.tagName.toLowerCase()
      + '.' + element.className);
  return {document: document.documentElement.scrollWidth - width, cut: out.slice(0, 5), scrolling};
}"""


def _seed(engine: Engine) -> dict[str, Any]:
    """Something on every page, with long names and large amounts: what makes a page wide."""
    at = int(datetime.fromisoformat(f"{PAY_DAY}T10:00").replace(tzinfo=UTC).timestamp())
    admin_email = EMAILS[Role.ADMIN]
    with session_factory(engine)() as session:
        market = Market(session, make_settings(str(engine.url)))
        for amount in (14_999, 2_340, 9_999):  # accepted, and refused above the ceilings: long statuses
            market.pay(0, amount, time=at)
        terminal_id = market.chains[0].terminal_id
        session.add(TerminalHealth(
            terminal_id=terminal_id, terminal_time=at, firmware_version="0.3.0-restauration", uptime_s=86_399,
            boots=1234, watchdog_resets=12, crash_resets=3, task_restarts=0, safe_mode_boots=1, errors={},
            last_error="OSError: [Errno 19] ENODEV while reading the PN532", battery_mv=3480, battery_low=True,
            unsent_records=1234, unsigned_records=0, log_free_bytes=480000, terminal_acked_seq=123456,
            lost_first_seq=100001, lost_last_seq=123000, rewound_from_seq=123456, rewound_to_seq=100000))
        session.commit()
        run = settlement.prepare_run(session, run_date=date.fromisoformat(PAY_DAY),
                                     settings=make_settings(str(engine.url)), by=admin_email)
        draw = sortition.create_draw(session, title="Comité de la caisse alimentaire commune, tirage de printemps",
                                     quotas=sortition.even_quotas(12), closing_date=date(2026, 4, 1), by=admin_email)
        assert draw.id is not None and run.id is not None
        sortition.import_volunteers(session, draw_id=draw.id, content="\n".join(  # the questionnaire: invitations follow
            ["Nom;Contact;Quartile de revenu;Date de naissance;Taille du foyer;Commerces"]
            + [f"Volontaire au nom assez long numéro {n};v{n}@exemple.fr;{1 + n % 4};01/03/{1940 + 20 * (n % 3)};{1 + n % 5};"
               "marché des Arceaux, épicerie du quartier" for n in range(24)]))
        sortition.publish_seed(session, draw_id=draw.id, phrase="Loto du mardi 21 avril 2026 : 3 14 15 92 65", by=admin_email)
        sortition.run_draw(session, draw_id=draw.id, by=admin_email)
        session.commit()
        household = session.execute(select(func.max(Household.id))).scalar_one()  # the one Market made
        card = session.execute(select(Card.uid).where(Card.household_id == household)).scalars().first()
        user = session.execute(select(ConsoleUser.id).where(ConsoleUser.email == admin_email)).scalar_one()
        assert card is not None
        return {"household": household, "vendor": market.vendor_ids[0], "terminal": terminal_id,
                "run": run.id, "draw": draw.id, "card": card.hex(), "user": user}


def test_every_page_fits_a_tablet_held_upright(page_as: Any, console_db: Engine) -> None:
    ids = _seed(console_db)
    page = page_as(Role.ADMIN)
    page.set_viewport_size(TABLET)
    problems = {}
    for path in PAGES:
        url = path.format(**ids)
        answer = page.goto(url)
        assert answer is not None and answer.status == 200, url
        found = page.evaluate(_OVERFLOW)
        if found["document"] > 0 or found["cut"] or found["scrolling"] or path in SHOWN:
            screenshot(page, "tablet-" + url.strip("/").replace("/", "-").split("?")[0])
        if found["document"] > 0 or found["cut"] or found["scrolling"]:
            problems[url] = found
    page.context.clear_cookies()  # signed out: the sign-in page, in the same context
    page.goto("/console/login")
    found = page.evaluate(_OVERFLOW)
    if found["document"] > 0 or found["cut"] or found["scrolling"]:
        problems["/console/login"] = found
    assert problems == {}, "\n".join(f"{url}: {found}" for url, found in problems.items())
