"""Every way provisioning can fail, each with a French message and what to check.

    ProvisioningError            message (what happened) + hint (what to check), in French
    ├── BoardNotFound            no serial port looks like a terminal
    ├── SeveralBoards            more than one does: say which with --port
    ├── PortNotAccessible        permission denied, or another program holds the port
    ├── BoardDisconnected        the cable went away in the middle of a step
    ├── DeviceError              the board answered with a Python error
    ├── CopyVerificationFailed   a copied file does not have the expected hash on the board
    ├── FlashError               esptool could not flash, or the chip is not the expected one
    ├── AdminTokenMissing        no admin token in the environment or the config file
    ├── BackendUnreachable       no answer from the backend
    ├── BackendRefused           the backend answered an error (bad token...): status_code says which
    │   ├── VendorUnknown        the vendor id does not exist (404)
    │   └── KeyAlreadyRegistered the backend knows this public key already (409)
    ├── KeyRotationRefused       a new key is needed and the technician said no
    ├── SecureElementNotReady    the ATECC608 was locked by someone else, or refuses a step
    └── SelfTestFailed           the signature or the hardware check failed

The technician reads `str(error)`: the message, then "À vérifier : " and the hint.
"""

from __future__ import annotations


class ProvisioningError(Exception):
    hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nÀ vérifier : {self.hint}" if self.hint else self.message


class BoardNotFound(ProvisioningError):
    hint = ("le câble USB est-il un câble de données (pas seulement de charge) ? Le pilote "
            "CP210x ou CH340 est-il installé ? Essayez un autre port USB, ou indiquez --port.")


class SeveralBoards(ProvisioningError):
    hint = "débranchez les autres cartes, ou choisissez le port avec --port."


class PortNotAccessible(ProvisioningError):
    pass


class BoardDisconnected(ProvisioningError):
    hint = ("le câble USB est-il bien branché ? Rebranchez le terminal et relancez la même "
            "commande : elle reprend là où elle s'est arrêtée.")


class DeviceError(ProvisioningError):
    traceback = ""
    hint = "le micrologiciel MicroPython est-il installé sur la carte ? Relancez avec --firmware-image."


class CopyVerificationFailed(ProvisioningError):
    hint = "la mémoire flash de la carte est peut-être pleine ou abîmée ; relancez la commande."


class FlashError(ProvisioningError):
    hint = ("la carte est-elle un ESP32 ? Maintenez le bouton BOOT en branchant le câble, "
            "puis relancez.")


class AdminTokenMissing(ProvisioningError):
    hint = ("définissez la variable CAISSE_ADMIN_TOKEN ou écrivez le jeton dans le fichier "
            "de configuration (voir docs/provisioning.md).")


class BackendUnreachable(ProvisioningError):
    hint = "la connexion Internet de l'ordinateur, et l'adresse donnée par --backend-url."


class BackendRefused(ProvisioningError):
    hint = "le jeton d'administration est-il le bon ? Sinon, contactez l'administrateur de la caisse."

    def __init__(self, message: str, hint: str | None = None, *, status_code: int) -> None:
        super().__init__(message, hint)
        self.status_code = status_code


class VendorUnknown(BackendRefused):
    hint = "le numéro du commerçant (--vendor) : il figure dans la console d'administration."


class KeyAlreadyRegistered(BackendRefused):
    hint = "une nouvelle clé pour ce terminal, ou « caisse-technicien decommission » sur l'ancien."


class KeyRotationRefused(ProvisioningError):
    hint = ("relancez et acceptez une nouvelle clé, ou utilisez d'abord "
            "« caisse-technicien decommission » sur ce terminal.")


class SecureElementNotReady(ProvisioningError):
    hint = ("un ATECC608 verrouillé ne se reconfigure jamais : mettez le terminal de côté et "
            "prévenez l'équipe technique (la puce est à remplacer).")


class SelfTestFailed(ProvisioningError):
    hint = "les branchements des composants (voir hardware/README.md), puis relancez la commande."
