/* riskmap — live machine early-warning page (/maps/protection), issue 16.
 * Draws the pipelines, their facilities and the construction sites (OGC API items of this
 * service), then follows GET /protection/alerts (Server-Sent Events): each alert moves the
 * machine's marker and is listed in the panel, newest first. Offline: vendored Leaflet only. */
(function () {
  "use strict";
  var COLORS = {critical: "#d00000", high: "#f08c00"};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function loadLayer(map, root, name, style, bounds) {
    return fetch(root + "/collections/" + name + "/items?limit=10000",
                 {headers: {Accept: "application/geo+json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (fc) {
        if (!fc || !fc.features || !fc.features.length) { return; }
        var layer = L.geoJSON(fc, {
          style: style,
          pointToLayer: function (f, ll) { return L.circleMarker(ll, style(f)); },
          onEachFeature: function (f, l) {
            var p = f.properties || {};
            l.bindTooltip(name + " " + (p.id || "") + (p.work ? " · " + p.work : "") +
                          (p.kind ? " · " + p.kind : "") +
                          (p.permit_no ? " · " + p.permit_no : ""));
          }
        }).addTo(map);
        bounds.extend(layer.getBounds());
        map.fitBounds(bounds);
      })
      .catch(function () { /* a layer the store lacks is left out */ });
  }

  window.riskmapProtectionLive = function (opts) {
    var root = opts.root || "";
    var map = L.map("map").setView([34.8, 117.25], 13);
    var bounds = L.latLngBounds([]);
    var styles = {
      pipelines: function () { return {color: "#7b3294", weight: 3}; },
      pipeline_facilities: function () {
        return {color: "#7b3294", radius: 5, fillOpacity: 0.8};
      },
      construction_sites: function (f) {
        var ok = f.properties && f.properties.permit_no;
        return {color: ok ? "#1a9850" : "#999", weight: 1, radius: 6, fillOpacity: 0.25};
      }
    };
    // only the layers this store has and this role may read (no 403/404 noise)
    fetch(root + "/collections", {headers: {Accept: "application/json"},
                                  credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {collections: []}; })
      .then(function (doc) {
        (doc.collections || []).forEach(function (c) {
          if (styles[c.id]) { loadLayer(map, root, c.id, styles[c.id], bounds); }
        });
      })
      .catch(function () { /* the map still shows machines and alerts */ });
    var machines = {};
    var list = document.getElementById("alerts");
    var status = document.getElementById("status");
    var count = 0;
    var source = new EventSource(root + "/protection/alerts");
    source.onopen = function () { status.textContent = "live · " + count + " alert(s)"; };
    source.onerror = function () { status.textContent = "reconnecting…"; };
    source.addEventListener("alert", function (ev) {
      var a = JSON.parse(ev.data);
      count += 1;
      status.textContent = "live · " + count + " alert(s)";
      var ll = [a.lat, a.lon];
      var color = COLORS[a.severity] || "#f08c00";
      var m = machines[a.machine_id];
      if (!m) {
        m = machines[a.machine_id] = L.circleMarker(ll, {radius: 8, weight: 2}).addTo(map);
      }
      m.setLatLng(ll).setStyle({color: color, fillColor: color, fillOpacity: 0.7});
      m.bindTooltip(a.machine_id + " (" + a.kind + "): " + a.message_zh);
      var item = el("div", "alert " + a.severity);
      item.appendChild(el("div", "t", a.time + " · " + a.severity + " · " + a.rule_id));
      item.appendChild(el("div", "", a.message_zh));
      item.appendChild(el("div", "t", a.message_en));
      item.addEventListener("click", function () { map.setView(ll, 17); });
      list.insertBefore(item, list.firstChild);
      while (list.childNodes.length > 200) { list.removeChild(list.lastChild); }
    });
  };
}());
