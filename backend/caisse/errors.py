"""Domain errors raised by the services, free of HTTP.

    CaisseError            code + human detail; the API maps each subclass to a status
    ├── NotFound           404: no such vendor, household, card, terminal
    ├── Conflict           409: the thing exists already, or an idempotency key is reused
    ├── InvalidInput       422: a value breaks a rule (bad UID, bad key, bad kind)
    ├── Forbidden          403: the acting account's role does not allow this
    ├── TerminalRefused    403: unknown or revoked terminal (docs/protocol.md)
    └── SyncUnauthorized   401: clock skew or bad signature on sync

MESSAGES gives the French sentence for each code a person can cause, in the console, the `caisse`
command or a spreadsheet import report (services speak English codes). Add a line when a page can
raise a new code; an unknown code falls back to a general sentence followed by the service's own
detail, so nothing is ever silently swallowed.
"""

from __future__ import annotations


class CaisseError(Exception):
    status_code = 400

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class NotFound(CaisseError):
    status_code = 404


class Conflict(CaisseError):
    status_code = 409


class InvalidInput(CaisseError):
    status_code = 422


class Forbidden(CaisseError):
    status_code = 403


class TerminalRefused(CaisseError):
    status_code = 403


class SyncUnauthorized(CaisseError):
    status_code = 401

    def __init__(self, code: str, detail: str, *, server_time: int | None = None) -> None:
        super().__init__(code, detail)
        self.server_time = server_time


def require_text(**fields: str) -> None:
    """Refuse an empty or blank field, named in the error's code (`invalid_<name>`)."""
    for name, value in fields.items():
        if not value or not value.strip():
            raise InvalidInput(f"invalid_{name}", f"{name} must not be empty")


# French sentences ----------------------------------------------------------------------------

MESSAGES = {
    "sign_in_refused": "Adresse e-mail ou mot de passe incorrect.",
    "sign_in_throttled": "Trop de tentatives de connexion pour cette adresse. Réessayez dans quelques minutes.",
    "invalid_name": "Le nom est obligatoire.",
    "invalid_zone": "Le quartier est obligatoire.",
    "invalid_members": "Un foyer compte au moins une personne.",
    "invalid_uid": "L'identifiant de carte doit être en hexadécimal, de 4, 7 ou 10 octets (8, 14 ou 20 caractères).",
    "card_exists": "Cette carte est déjà attribuée.",
    "too_many_cards": "Ce foyer a déjà 16 cartes en service : bloquez ou reprenez-en une avant d'en remettre une autre.",
    "too_many_ended_cards": "Ce foyer a déjà eu 256 cartes, perdues et rendues comprises : aucune autre ne peut lui être remise.",
    "card_not_found": "Carte inconnue.",
    "card_returned": "Cette carte a été rendue : remettez une nouvelle carte au foyer.",
    "invalid_block_reason": "Une carte se bloque comme perdue ou volée.",
    "invalid_card_type": "Type de carte inconnu.",
    "household_not_found": "Foyer introuvable.",
    "vendor_not_found": "Commerçant introuvable.",
    "terminal_not_found": "Terminal introuvable.",
    "no_secure_element": "Ce terminal a été enregistré sans élément sécurisé : il n'a pas de clé des codes membres.",
    "terminal_revoked": "Ce terminal a été révoqué.",
    "invalid_kind": "Type de commerce inconnu.",
    "invalid_convention_status": "Statut de conventionnement inconnu.",
    "invalid_convention_dates": "La fin du conventionnement doit suivre son début.",
    "accreditation_incomplete": ("Pour conventionner, il faut que tous les critères en vigueur soient remplis, et la visite"
                                 " (date et personne) et la formation enregistrées."),
    "accreditation_unchanged": "Rien ne change : le conventionnement est déjà ainsi.",
    "accreditation_changed": ("Le conventionnement a été modifié par quelqu'un d'autre depuis l'affichage des changements :"
                              " relisez-les et confirmez de nouveau."),
    "invalid_visit": "Une visite a une date et le nom de qui l'a faite (200 caractères au plus).",
    "unknown_criterion": "Critère inconnu.",
    "criterion_not_found": "Critère introuvable.",
    "invalid_criterion": "Un critère s'écrit en 1 à 200 caractères.",
    "criterion_exists": "Ce critère existe déjà.",
    "criterion_retired": "Ce critère est déjà retiré.",
    "invalid_iban": "IBAN invalide : vérifiez le pays, la longueur et la clé de contrôle.",
    "invalid_email": "Adresse e-mail mal formée.",
    "invalid_role": "Rôle inconnu.",
    "invalid_password": "Le mot de passe doit compter au moins 10 caractères.",
    "user_exists": "Un compte existe déjà pour cette adresse.",
    "admin_by_required": "Indiquez votre compte d'administrateur actif (--by adresse) : seul le tout premier compte se crée sans.",
    "iban_approver_required": "Seule une personne de la trésorerie ou de l'administration approuve un nouvel IBAN.",
    "admin_required": "Seul un administrateur gère les comptes de la console.",
    "last_admin": "C'est le dernier administrateur actif : créez ou réactivez d'abord un autre administrateur.",
    "user_already_active": "Ce compte est déjà actif : rien n'a changé.",
    "user_already_disabled": "Ce compte est déjà désactivé : rien n'a changé.",
    "password_already_reset": "Ce mot de passe vient déjà d'être changé : rien n'a été refait. Rouvrez la page du compte pour recommencer.",
    "passwords_differ": "Les deux nouveaux mots de passe ne sont pas identiques.",
    "wrong_password": "Le mot de passe actuel n'est pas le bon.",
    "same_password": "Le nouveau mot de passe doit être différent de l'actuel.",
    "card_not_blocked": "Cette carte n'est pas bloquée : rien à débloquer.",
    "card_block_final": ("Cette carte est bloquée comme volée, copiée ou remplacée : elle ne se débloque pas."
                         " Remettez une nouvelle carte au foyer (Remplacer)."),
    "invalid_date": "Date invalide (attendu : jour/mois/année).",
    "invalid_form": "Formulaire incomplet ou mal rempli.",
    # transactions, settlements, budget, flows, sortition
    "record_not_found": "Enregistrement introuvable.",
    "record_not_held": "Ce paiement n'attend plus de décision : il a déjà été libéré ou rejeté.",
    "invalid_decided_by": "Indiquez qui prend la décision.",
    "invalid_decision": "Une décision groupée libère ou rejette les enregistrements retenus d'un terminal ou d'un commerçant, pas des deux.",
    "no_lost_records": "Ce terminal ne signale aucun enregistrement perdu juste après ceux que la base a reçus : rien à constater.",
    "lost_records_arrived": "Une partie de ces enregistrements est arrivée entre-temps : ils ne sont pas perdus, rien n'a été changé.",
    "terminal_not_suspect": "Ce terminal n'est pas signalé suspect : il n'y a pas de soupçon à lever.",
    "invalid_run_date": "Date de règlement invalide.",
    "day_not_over": "Cette journée n'est pas terminée : on ne règle qu'une journée passée.",
    "second_person_required": "Une autre personne que celle qui a préparé ou demandé cette opération doit l'approuver.",
    "not_an_active_account": ("Ce nom n'est pas un compte actif de la console : indiquez l'adresse e-mail de votre compte"
                              " (caisse user add pour en créer un)."),
    "name_not_sepa": ("Ce nom ne contient aucun caractère que les banques lisent dans un virement SEPA (lettres, chiffres,"
                      " / - ? : ( ) . , ' +) : écrivez-le en lettres."),
    "iban_outside_sepa": "Cet IBAN est hors de la zone SEPA : la caisse ne paie que des comptes de la zone SEPA par virement.",
    "iban_unchanged": "C'est déjà l'IBAN de ce commerçant.",
    "iban_change_pending": "Un changement d'IBAN attend déjà l'approbation pour ce commerçant : faites-le approuver ou refuser d'abord.",
    "iban_change_not_found": "Changement d'IBAN introuvable.",
    "iban_change_decided": "Ce changement d'IBAN a déjà été approuvé ou refusé.",
    "invalid_reason": "Une contre-passation dit pourquoi, en 200 caractères au plus.",
    "transfer_not_found": "Aucune écriture du grand livre sous cette référence.",
    "not_reversible": ("Seule une écriture saisie à la main (allocation créditée, cotisation, subvention, frais) se contre-passe ;"
                       " un paiement se corrige par une annulation ou une décision de vérification, un règlement par la banque."),
    "reversal_would_overdraw": ("Le foyer a déjà dépensé une partie de cette allocation : la contre-passer le mettrait en dette."
                                " Le trop-perçu se règle avec le foyer, par une personne de la caisse."),
    "not_approved": "Le règlement doit être approuvé avant de générer ses fichiers.",
    "settlement_run_not_found": "Règlement introuvable.",
    "settlement_file_not_found": "Ce fichier n'existe pas pour ce règlement.",
    "invalid_month": "Un mois s'écrit AAAA-MM.",
    "invalid_amount": "Montant invalide : un nombre d'euros positif, avec au plus deux décimales (par exemple 12,50), jusqu'à 1 000 000 €.",
    "below_minimum": "Cette cotisation est inférieure au minimum fixé par la caisse.",
    "invalid_period": "Période invalide : le mois de fin suit celui du début, sur 36 mois au plus.",
    "draw_not_found": "Tirage introuvable.",
    "household_left_no_card": "Ce foyer est parti : aucune carte ne lui est plus remise.",
    "user_not_found": "Aucun compte pour cette adresse e-mail.",
    "terminal_exists": "Ce terminal est déjà enregistré : sa clé publique l'est déjà.",
    "invalid_public_key": "Clé publique invalide : un point P-256 non compressé de 65 octets, en hexadécimal (130 caractères).",
    "invalid_code": "Un code de membre compte exactement 4 chiffres.",
    "invalid_code_failures": "Rapport de codes erronés mal formé (envoyé par un terminal).",
    "invalid_reference": "Une référence compte de 1 à 100 caractères imprimables, sans deux-points (:).",
    "reference_reused": "Cette référence a déjà servi pour une opération différente (foyer, mois ou montant) : rien n'est enregistré.",
    # allowances
    "month_allocated": "Les allocations sont déjà attribuées pour ce mois : une nouvelle règle ne commence qu'après le dernier mois attribué.",
    "month_closed": "Ce mois est clos : ses allocations ne peuvent plus être attribuées.",
    "invalid_allowance_rule": "Règle d'allocation inconnue.",
    "invalid_unspent_policy": "Règle inconnue pour l'argent non dépensé.",
    "negative_amount": "Un montant ne peut pas être négatif.",
    # household means, contributions due, costs, year budget
    "invalid_size": "Un foyer compte de 1 à 30 personnes.",
    "means_missing": "Indiquez le quartile de revenu ou le revenu mensuel du foyer.",
    "invalid_quartile": "Le quartile de revenu est 1, 2, 3 ou 4.",
    "invalid_category": "Catégorie de frais inconnue : logiciel, banque, plateforme, personnel ou autre.",
    "invalid_year": "Une année s'écrit sur quatre chiffres, entre 2000 et 2100.",
    # the Fonds page
    "invalid_source": "Indiquez qui verse la subvention.",
    "invalid_memo": "Indiquez à quoi correspondent ces frais.",
    "fund_step_not_found": "Cette opération n'existe pas.",
    # caisse fund import
    "empty_file": "Le fichier est vide.",
    "invalid_household_id": "Le numéro de foyer doit être un nombre entier.",
    "missing_reference": "La référence de la plateforme de paiement est vide.",
    "duplicate_reference": "Cette référence figure déjà sur une ligne précédente du fichier.",
    "import_conflict": ("Des lignes reprennent une référence déjà importée avec un autre contenu : rien n'est importé."
                        " Relancez avec --skip-errors pour importer les autres lignes et voir lesquelles."),
}
# Codes whose service detail is already French and more precise than a fixed sentence (the
# sortition services write for the committee directly; line numbers, bounds, states).
FRENCH_DETAILS = frozenset({
    "invalid_seats", "invalid_title", "invalid_quotas", "invalid_seed_phrase", "no_volunteers", "draw_state",
    "invalid_volunteer", "invalid_stratum", "too_many_volunteers", "invalid_import", "invalid_export", "card_in_use",
    "bank_file_unreadable", "bank_file_unknown", "bank_payment_unknown", "bank_run_not_exported", "bank_amount_mismatch",
    "file_too_large", "too_many_rows", "missing_columns",
    "backup_unsupported", "backup_not_found", "backup_wrong_kind", "backup_tool_missing", "backup_tool_failed",
    # membership (caisse.members.sortition, caisse.members.service)
    "invalid_shares", "invitation_state", "volunteer_not_found", "household_left", "invalid_end_date", "invalid_subject",
    "confirmation_required",
})


def french(error: CaisseError) -> str:
    message = MESSAGES.get(error.code)
    if error.code in FRENCH_DETAILS:
        return error.detail
    if message is None:
        return f"Opération refusée ({error.code}) : {error.detail}"
    return message
