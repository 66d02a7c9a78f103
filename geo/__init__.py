"""riskmap.geo — what we compute: pure analysis functions over GeoDataFrames and graphs."""
