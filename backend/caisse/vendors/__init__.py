"""Vendors (producers and shops): their details, IBAN changes, accreditation."""
