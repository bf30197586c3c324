"""Writers of what users take away: the GeoPackage (and later styles, chips, reports)."""
