"""User-facing texts of the SMS and USSD adapters, one JSON catalog per language."""

from services.common.catalog import Catalog

_CATALOG = Catalog(__name__)
t = _CATALOG.t
