"""The ticketing service's user-facing texts: ticket captions and the video's caption."""

from services.common.catalog import Catalog

CATALOG = Catalog(__name__)
