"""riskmap.maps — how it is shown: Folium map builders, legends, offline assets."""
