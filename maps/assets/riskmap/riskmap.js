/* riskmap.js — map controls for riskmap's audience maps (MIT, part of riskmap).
 *
 * One entry point, RiskMap.init(map, config), draws every layer of a map from a plain config
 * object written by maps/base.py: inline GeoJSON layers or layers loaded from the API by bbox
 * as the view moves (BboxLoader), categorical / graduated styling, popups built from field
 * lists in the current language, a grouped layer control, a legend of the visible layers,
 * search by id/name, a measure tool, fullscreen, mouse coordinates, a zh/en switch, the
 * hazmat route request form and the print/publish header. No network access except the app's
 * own API (relative URLs) and the configured tile layer.
 */
(function (global) {
  'use strict';
  var L = global.L;

  // ---------------------------------------------------------------- helpers
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  // A value of a lookup table keyed by feature data: only the table's own keys, so a value
  // such as "__proto__" or "constructor" finds nothing.
  function own(obj, key) {
    return obj && Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
  }
  function tr(label, lang) {
    if (label === null || label === undefined) { return ''; }
    if (typeof label === 'string') { return label; }
    return label[lang] !== undefined ? label[lang] : (label.zh !== undefined ? label.zh : label.en);
  }
  function fmtNum(v, digits) {
    if (typeof v !== 'number' || !isFinite(v)) { return String(v); }
    var d = digits === undefined ? 2 : digits;
    return v.toLocaleString('en-US', {maximumFractionDigits: d, minimumFractionDigits: 0});
  }
  function el(tag, cls, parent) {
    var e = L.DomUtil.create(tag, cls || '', parent);
    return e;
  }
  var UI = {
    layers: {zh: '图层', en: 'Layers'},
    legend: {zh: '图例', en: 'Legend'},
    search: {zh: '搜索编号或名称…', en: 'Search id or name…'},
    noMatch: {zh: '无结果', en: 'No match'},
    measure: {zh: '测量', en: 'Measure'},
    measureHelp: {zh: '单击添加点，双击结束', en: 'Click to add points, double-click to finish'},
    distance: {zh: '距离', en: 'Distance'},
    area: {zh: '面积', en: 'Area'},
    fullscreen: {zh: '全屏', en: 'Fullscreen'},
    zoomIn: {zh: '放大至 {z} 级以上加载', en: 'zoom to {z}+ to load'},
    zoomInDensity: {zh: '灰度为要素密度；放大至 {z} 级以上加载', en: 'shading = density; zoom to {z}+ to load'},
    loading: {zh: '加载中…', en: 'loading…'},
    loadingN: {zh: '加载中 {n} / {m}…', en: 'loading {n} of {m}…'},
    shown: {zh: '显示 {n} / {m}', en: 'showing {n} of {m}'},
    loadError: {zh: '加载失败', en: 'failed to load'},
    origin: {zh: '起点', en: 'Origin'},
    destination: {zh: '终点', en: 'Destination'},
    departAt: {zh: '出发时间', en: 'Departure'},
    alternatives: {zh: '备选路线数', en: 'Alternatives'},
    objective: {zh: '优化目标', en: 'Objective'},
    time: {zh: '时间', en: 'time'},
    length: {zh: '距离', en: 'distance'},
    risk: {zh: '风险', en: 'risk'},
    pick: {zh: '在地图上点击', en: 'click on the map'},
    route: {zh: '规划路线', en: 'Find route'},
    routeTitle: {zh: '危化品车辆路线申请', en: 'Hazmat route request'},
    refused: {zh: '拒绝通行道路', en: 'Refused roads'},
    zones: {zh: '经过区域', en: 'Zones passed'},
    riskScore: {zh: '风险值', en: 'Risk score'},
    minutes: {zh: '分钟', en: 'min'},
    noRoute: {zh: '无可行路线', en: 'No route'},
    issued: {zh: '发布机关', en: 'Issued by'},
    notice: {zh: '通告编号', en: 'Notice no.'},
    date: {zh: '日期', en: 'Date'}
  };

  // ---------------------------------------------------------------- GCJ-02 (display only)
  var GA = 6378245.0, GEE = 0.00669342162296594323;
  function outOfChina(lon, lat) {
    return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }
  function gcjDelta(lon, lat) {
    var x = lon - 105.0, y = lat - 35.0, PI = Math.PI;
    var dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) +
      (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0 +
      (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0 +
      (160.0 * Math.sin(y / 12.0 * PI) + 320 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    var dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) +
      (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0 +
      (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0 +
      (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    var radlat = lat / 180.0 * PI, magic = 1 - GEE * Math.sin(radlat) * Math.sin(radlat);
    var sq = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((GA * (1 - GEE)) / (magic * sq) * PI);
    dlon = (dlon * 180.0) / (GA / sq * Math.cos(radlat) * PI);
    return [dlon, dlat];
  }
  function toGcj(lon, lat) {
    if (outOfChina(lon, lat)) { return [lon, lat]; }
    var d = gcjDelta(lon, lat);
    return [lon + d[0], lat + d[1]];
  }
  function fromGcj(lon, lat) {
    var wl = lon, wb = lat;
    for (var i = 0; i < 6; i++) {
      var t = toGcj(wl, wb);
      wl += lon - t[0]; wb += lat - t[1];
    }
    return [wl, wb];
  }
  function shiftCoords(c) {
    if (typeof c[0] === 'number') { return toGcj(c[0], c[1]); }
    return c.map(shiftCoords);
  }
  function shiftGeojson(fc) {
    (fc.features || []).forEach(function (f) {
      var g = f.geometry;
      if (!g) { return; }
      if (g.type === 'GeometryCollection') {
        g.geometries.forEach(function (h) { h.coordinates = shiftCoords(h.coordinates); });
      } else { g.coordinates = shiftCoords(g.coordinates); }
    });
    return fc;
  }

  // ---------------------------------------------------------------- styling
  function classColor(cls, props) {
    if (!cls) { return null; }
    var v = props ? props[cls.field] : undefined;
    if (cls.type === 'categorical') {
      for (var i = 0; i < cls.classes.length; i++) {
        if (String(cls.classes[i].value) === String(v)) { return cls.classes[i].color; }
      }
      return cls['default'] || '#888888';
    }
    if (cls.type === 'graduated') {
      if (typeof v !== 'number' || !isFinite(v)) { return cls['default'] || '#888888'; }
      var b = cls.breaks;  // n+1 edges for n colours; values beyond clamp to the ends
      for (var j = 0; j < cls.colors.length; j++) {
        if (v < b[j + 1]) { return cls.colors[j]; }
      }
      return cls.colors[cls.colors.length - 1];
    }
    return null;
  }
  function featureStyle(spec, props) {
    var s = L.extend({}, spec.style || {});
    var c = classColor(spec.classify, props);
    if (c) {
      s.color = spec.kind === 'polygon' && spec.style && spec.style.strokeFixed ? s.color : c;
      s.fillColor = c;
    }
    var st = spec.styleBy;  // per-class overrides, e.g. dash for unregistered HCAs
    var over = st && props ? own(st.values, String(props[st.field])) : undefined;
    if (over) { L.extend(s, over); }
    return s;
  }

  // ---------------------------------------------------------------- popups
  function fieldValue(f, v, lang) {
    if (v === null || v === undefined || v === '' || (typeof v === 'number' && !isFinite(v))) {
      return null;
    }
    var label = own(f.enum, String(v));
    if (label) { v = tr(label, lang); }
    if (typeof v === 'boolean') { v = v ? (lang === 'en' ? 'yes' : '是') : (lang === 'en' ? 'no' : '否'); }
    if (f.type === 'list') {
      var items = Array.isArray(v) ? v : String(v).split(/\n|;\s*/);
      items = items.filter(function (x) { return String(x).trim() !== ''; });
      if (!items.length) { return null; }
      return '<ul>' + items.map(function (x) {
        return '<li>' + esc(typeof x === 'object' ? JSON.stringify(x) : x) + '</li>';
      }).join('') + '</ul>';
    }
    if (f.type === 'percent' && typeof v === 'number') { return esc(fmtNum(v * 100, 1) + ' %'); }
    var s = typeof v === 'number' ? fmtNum(v, f.digits) : String(v);
    return esc(s + (f.unit ? ' ' + f.unit : ''));
  }
  function popupHtml(spec, props, lang) {
    var p = spec.popup || {};
    var h = '<div class="riskmap-popup" data-layer="' + esc(spec.id) + '">';
    var title = tr(spec.label, lang);
    if (p.title && props[p.title] !== undefined && props[p.title] !== null) {
      title += ' ' + props[p.title];
    }
    h += '<div class="riskmap-popup-title">' + esc(title) + '</div>';
    if (p.sentence) {
      var s = props[tr(p.sentence, lang)];
      if (s) { h += '<p class="riskmap-popup-sentence">' + esc(s) + '</p>'; }
    }
    var rows = '';
    (p.fields || []).forEach(function (f) {
      var v = fieldValue(f, props[f.key], lang);
      if (v !== null) {
        rows += '<tr data-field="' + esc(f.key) + '"><th>' + esc(tr(f.label, lang)) +
          '</th><td>' + v + '</td></tr>';
      }
    });
    if (rows) { h += '<table>' + rows + '</table>'; }
    h += popupLink(p.link, props, lang);
    return h + '</div>';
  }

  // ---------------------------------------------------------------- app
  function App(map, cfg) {
    this.map = map;
    this.cfg = cfg;
    this.lang = cfg.lang || 'zh';
    this.gcj = !!cfg.gcj;
    this.layers = {};     // id -> {spec, layer, state}
    this.controls = [];   // objects with a render() to call on language change
    this.status = {};     // id -> status text for remote layers
    this._init();
  }
  App.prototype._init = function () {
    var self = this, map = this.map, cfg = this.cfg;
    if (map.attributionControl) { map.attributionControl.setPrefix('Leaflet'); }
    (cfg.layers || []).forEach(function (spec) { self._addLayer(spec); });
    if (cfg.publish) { this._addPublishHeader(cfg.publish); }
    if (cfg.title && !cfg.publish) { this._addTitle(); }
    if (!cfg.publish) { this._addLayerControl(); }  // the public notice shows a legend only
    this._addLegend();
    var c = cfg.controls || {};
    if (c.search) { this._addSearch(); }
    if (c.measure) { this._addMeasure(); }
    if (c.fullscreen) { this._addFullscreen(); }
    if (c.coords) { this._addCoords(); }
    if (c.lang) { this._addLangSwitch(); }
    (cfg.panels || []).forEach(function (p) { self._addPanel(p); });
    if (cfg.routeForm) { this._addRouteForm(cfg.routeForm); }
    this._initShared();
    if (cfg.bounds) {
      var b = cfg.bounds;  // [minx, miny, maxx, maxy] lon/lat, already shifted when gcj
      var lb = L.latLngBounds([[b[1], b[0]], [b[3], b[2]]]);
      // a phone shows the middle of the district a zoom level closer (outliers cropped)
      map.fitBounds(this._phone() ? lb.pad(-0.22) : lb, {padding: [10, 10]});
    }
    map.on('moveend', function () { self._refreshRemote(); });
    this._refreshRemote();
    global.document.documentElement.setAttribute('lang', this.lang === 'en' ? 'en' : 'zh-CN');
    this.ready = true;
    map.getContainer().setAttribute('data-riskmap-ready', '1');
  };
  App.prototype.t = function (label) { return tr(label, this.lang); };

  var PANES = {base: 350, main: 400, top: 450};  // context below, findings above
  App.prototype._renderer = function (spec) {
    var pane = spec.pane || (spec.group === 'findings' ? 'top' : (spec.group === 'context' ? 'base' : 'main'));
    this.renderers = this.renderers || {};
    if (!this.renderers[pane]) {
      var name = 'riskmap-' + pane;
      if (!this.map.getPane(name)) { this.map.createPane(name).style.zIndex = PANES[pane] || 400; }
      this.renderers[pane] = L.canvas({padding: 0.3, pane: name});
    }
    return this.renderers[pane];
  };
  App.prototype._geojsonLayer = function (spec) {
    var self = this, renderer = this._renderer(spec);
    // Remote (bbox-loaded) layers carry thousands of features: popups and tooltips are bound
    // lazily on the first click / hover through the group instead of once per feature.
    var lazy = !!spec.remote;
    var g = L.geoJSON(null, {
      style: function (f) { return L.extend({renderer: renderer}, featureStyle(spec, f.properties)); },
      pointToLayer: function (f, latlng) {
        var rf = spec.radiusField, p = f.properties || {};
        if (rf && typeof p[rf] === 'number' && isFinite(p[rf])) {
          return L.circle(latlng, L.extend({renderer: renderer}, featureStyle(spec, p), {radius: p[rf]}));
        }
        return L.circleMarker(latlng, L.extend({renderer: renderer, radius: 5},
          featureStyle(spec, f.properties)));
      },
      onEachFeature: lazy ? null : function (f, layer) {
        self._bindPopup(spec, layer);
        self._bindTooltip(spec, layer);
      }
    });
    if (lazy) {
      g.on('click', function (e) {
        var l = e.layer;
        if (self.clickModeActive()) { return; }  // the click goes to the map (measure, route point)
        if (l && !l.getPopup() && self._bindPopup(spec, l)) { l.openPopup(e.latlng); }
      });
      g.on('mouseover', function (e) {
        var l = e.layer;
        if (l && !l.getTooltip() && self._bindTooltip(spec, l)) { l.openTooltip(e.latlng); }
      });
    }
    return g;
  };
  App.prototype._bindPopup = function (spec, layer) {
    var self = this, f = layer.feature;
    if (!spec.popup || !f || layer.getPopup()) { return false; }
    layer.bindPopup(function () { return popupHtml(spec, f.properties || {}, self.lang); },
      self._popupOptions());
    // in a map click mode (measure, route points) a click on the feature is a click on the map
    layer.off('click', layer._openPopup, layer);
    layer.on('click', function (e) { if (!self.clickModeActive()) { layer._openPopup(e); } });
    return true;
  };
  App.prototype._bindTooltip = function (spec, layer) {
    var f = layer.feature, p = (f && f.properties) || {};
    if (!spec.tooltip || p[spec.tooltip] === undefined || p[spec.tooltip] === null) { return false; }
    layer.bindTooltip(esc(p[spec.tooltip]), {sticky: true});
    return true;
  };
  App.prototype._addLayer = function (spec) {
    var layer = this._geojsonLayer(spec);
    var entry = {spec: spec, layer: layer, index: {}};
    if (spec.data) {
      var data = this.gcj ? shiftGeojson(spec.data) : spec.data;
      layer.addData(data);
      this._indexLayer(entry);
    }
    this.layers[spec.id] = entry;
    if (spec.visible !== false) { layer.addTo(this.map); }
  };
  App.prototype._indexLayer = function (entry) {
    var keys = entry.spec.search || [];
    entry.index = Object.create(null);  // keys are feature data
    entry.layer.eachLayer(function (l) {
      var p = (l.feature && l.feature.properties) || {};
      l.riskmapSpec = entry.spec;
      keys.forEach(function (k) {
        if (p[k] !== undefined && p[k] !== null) {
          entry.index[String(p[k]).toLowerCase()] = l;
        }
      });
    });
  };

  // --- BboxLoader: remote layers fetched from the API by bbox on moveend -----------------
  App.prototype._refreshRemote = function () {
    var self = this;
    Object.keys(this.layers).forEach(function (id) {
      var e = self.layers[id];
      if (e.spec.remote) { self._loadRemote(e); }
    });
  };
  App.prototype._loadRemote = function (entry) {
    var self = this, spec = entry.spec, r = spec.remote, map = this.map;
    var low = map.getZoom() < (r.minZoom || 0);
    this._showOverview(entry, map.hasLayer(entry.layer) && low);
    if (!map.hasLayer(entry.layer)) { return; }
    if (low) {
      if (entry.abort) { entry.abort.abort(); }
      entry.pending = false;
      entry.layer.clearLayers();
      entry.key = null;
      this._setStatus(spec.id, r.overview ? UI.zoomInDensity : UI.zoomIn, {z: r.minZoom});
      return;
    }
    var b = map.getBounds(), w = b.getWest(), s = b.getSouth(), e = b.getEast(), n = b.getNorth();
    if (this.gcj) {  // the view is in GCJ-02; the API speaks WGS 84 / CGCS2000
      var sw = fromGcj(w, s), ne = fromGcj(e, n);
      w = sw[0]; s = sw[1]; e = ne[0]; n = ne[1];
    }
    var bbox = [w, s, e, n].map(function (v) { return v.toFixed(6); }).join(',');
    if (entry.key === bbox) { return; }
    entry.key = bbox;
    if (entry.abort) { entry.abort.abort(); }
    var ctrl = global.AbortController ? new global.AbortController() : null;
    entry.abort = ctrl;
    // Pages fetched one after the other, each drawn as it arrives (the next request is sent
    // before the current page is drawn), up to `limit` features per view; the first page is
    // small so that something is on screen quickly.
    var cap = r.limit || 5000, size = Math.min(r.page || cap, cap);
    var firstSize = Math.min(r.first || size, size);
    var base = r.url + (r.url.indexOf('?') < 0 ? '?' : '&') + 'bbox=' + bbox;
    var loaded = 0, first = true, t0 = global.performance ? global.performance.now() : 0;
    function fetchPage(offset) {
      var url = base + '&limit=' + Math.min(offset ? size : firstSize, cap - offset) +
        (offset ? '&offset=' + offset : '');
      return global.fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/geo+json'},
        signal: ctrl ? ctrl.signal : undefined})
        .then(function (resp) {
          if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
          return resp.json();
        });
    }
    function fail(err) {
      if (err && err.name === 'AbortError') { return; }
      if (entry.key !== bbox) { return; }
      entry.pending = false;
      self._setStatus(spec.id, UI.loadError, {});
      if (global.console && global.console.warn) { global.console.warn('riskmap: ' + spec.id + ': ' + err); }
    }
    function step(offset, req) {
      req.then(function (fc) {
        if (entry.key !== bbox) { return; }
        var feats = fc.features || [], nret = feats.length;
        var nmatch = typeof fc.numberMatched === 'number' ? fc.numberMatched : offset + nret;
        var more = nret > 0 && offset + nret < Math.min(nmatch, cap);
        var next = more ? fetchPage(offset + nret) : null;
        if (first) { entry.layer.clearLayers(); first = false; }
        entry.layer.addData(self.gcj ? shiftGeojson(fc) : fc);
        loaded += nret;
        entry.loaded = loaded;
        var c = map.getContainer();
        c.setAttribute('data-loaded-' + spec.id, String(loaded));
        if (next) {
          self._setStatus(spec.id, UI.loadingN, {n: fmtNum(loaded, 0), m: fmtNum(Math.min(nmatch, cap), 0)});
          step(offset + nret, next);
          return;
        }
        self._indexLayer(entry);
        entry.pending = false;
        if (self._sharedRefresh) { self._sharedRefresh(); }  // labels of the loaded features
        self._setStatus(spec.id, nmatch > loaded ? UI.shown : null, {n: fmtNum(loaded, 0), m: fmtNum(nmatch, 0)});
        if (t0) { c.setAttribute('data-load-ms-' + spec.id, String(Math.round(global.performance.now() - t0))); }
      }).catch(fail);
    }
    this._setStatus(spec.id, UI.loading, {});
    entry.pending = true;
    entry.loaded = 0;
    step(0, fetchPage(0));
  };
  // Low-zoom overview of a bbox layer: feature counts on a grid (GET /maps/density/{id}),
  // fetched once, drawn in grey shades below the layer's zoom threshold; never blocks the map.
  App.prototype._showOverview = function (entry, show) {
    var self = this, r = entry.spec.remote, map = this.map;
    if (!r.overview) { return; }
    if (!show) {
      if (entry.overviewLayer && map.hasLayer(entry.overviewLayer)) { map.removeLayer(entry.overviewLayer); }
      return;
    }
    if (entry.overviewLayer) {
      if (!map.hasLayer(entry.overviewLayer)) { entry.overviewLayer.addTo(map); }
      return;
    }
    if (entry.overviewRequested) { return; }
    entry.overviewRequested = true;
    global.fetch(r.overview, {credentials: 'same-origin', headers: {'Accept': 'application/geo+json'}})
      .then(function (resp) {
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.json();
      })
      .then(function (fc) {
        var max = fc.max || 1, renderer = self._renderer(L.extend({}, entry.spec, {pane: 'base'}));
        entry.overviewLayer = L.geoJSON(self.gcj ? shiftGeojson(fc) : fc, {
          interactive: false,
          style: function (f) {
            var share = Math.sqrt((f.properties.count || 0) / max);
            return {renderer: renderer, stroke: false, fillColor: '#525252', fillOpacity: 0.08 + 0.5 * share};
          }
        });
        map.getContainer().setAttribute('data-overview-' + entry.spec.id, String((fc.features || []).length));
        self._loadRemote(entry);  // adds it if still zoomed out and visible
      })
      .catch(function (err) {
        if (global.console && global.console.warn) { global.console.warn('riskmap: overview ' + entry.spec.id + ': ' + err); }
      });
  };
  App.prototype._setStatus = function (id, label, vars) {
    this.status[id] = label ? {label: label, vars: vars} : null;
    if (this.legend) { this.legend.render(); }
  };
  App.prototype._statusText = function (id) {
    var st = this.status[id];
    if (!st) { return ''; }
    var s = this.t(st.label);
    Object.keys(st.vars || {}).forEach(function (k) { s = s.replace('{' + k + '}', st.vars[k]); });
    return s;
  };

  // --- layer control with groups ---------------------------------------------------------
  App.prototype._addLayerControl = function () {
    var self = this, map = this.map, cfg = this.cfg;
    var Ctl = L.Control.extend({
      options: {position: 'topright'},
      onAdd: function () {
        var div = el('div', 'riskmap-layers leaflet-bar riskmap-box');
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        this.div = div;
        this.render();
        return div;
      },
      render: function () {
        var div = this.div, ctl = this;
        div.innerHTML = '';
        var head = el('div', 'riskmap-box-title', div);
        head.textContent = self.t(UI.layers);
        var body = el('div', 'riskmap-layers-body', div);
        (cfg.groups || []).forEach(function (g) {
          var ids = (cfg.layers || []).filter(function (s) { return s.group === g.id; });
          if (!ids.length) { return; }
          var gd = el('div', 'riskmap-layer-group', body);
          gd.setAttribute('data-group', g.id);
          el('div', 'riskmap-group-title', gd).textContent = self.t(g.label);
          ids.forEach(function (spec) {
            var lab = el('label', 'riskmap-layer-item', gd);
            var cb = el('input', '', lab);
            cb.type = 'checkbox';
            cb.setAttribute('data-layer', spec.id);
            cb.checked = map.hasLayer(self.layers[spec.id].layer);
            el('span', '', lab).textContent = ' ' + self.t(spec.label);
            L.DomEvent.on(cb, 'change', function () {
              var ly = self.layers[spec.id].layer;
              if (cb.checked) { ly.addTo(map); } else { map.removeLayer(ly); }
              self.layers[spec.id].key = null;
              self._refreshRemote();
              if (self.legend) { self.legend.render(); }
              if (self._sharedRefresh) { self._sharedRefresh(); }
            });
          });
        });
        ctl.body = body;
      }
    });
    this.layerControl = new Ctl();
    this.layerControl.addTo(map);
    this.controls.push(this.layerControl);
  };

  // --- legend (categorical + graduated) of the visible layers ----------------------------
  App.prototype._legendSwatch = function (spec, color, parent) {
    var sw = el('span', 'riskmap-swatch riskmap-swatch-' + (spec.kind || 'polygon'), parent);
    var st = spec.style || {};
    if (spec.kind === 'line') {
      sw.style.borderTop = (st.weight || 3) + 'px ' + (st.dashArray ? 'dashed ' : 'solid ') + color;
    } else {
      sw.style.background = color;
      sw.style.opacity = spec.kind === 'point' ? 1 : Math.max(st.fillOpacity || 0.5, 0.35);
      if (st.color && spec.kind === 'polygon') { sw.style.border = '1px solid ' + (st.strokeFixed ? st.color : color); }
    }
    return sw;
  };
  App.prototype._addLegend = function () {
    var self = this, map = this.map, cfg = this.cfg;
    var Ctl = L.Control.extend({
      options: {position: 'bottomright'},
      onAdd: function () {
        var div = el('div', 'riskmap-legend riskmap-box');
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        this.div = div;
        this.render();
        return div;
      },
      render: function () {
        var div = this.div;
        if (!div) { return; }
        div.innerHTML = '';
        el('div', 'riskmap-box-title', div).textContent = self.t(UI.legend);
        (cfg.layers || []).forEach(function (spec) {
          var entry = self.layers[spec.id];
          if (!entry || !map.hasLayer(entry.layer) || spec.legend === false) { return; }
          var blk = el('div', 'riskmap-legend-layer', div);
          blk.setAttribute('data-layer', spec.id);
          var head = el('div', 'riskmap-legend-head', blk);
          var cls = spec.classify;
          if (!cls) { self._legendSwatch(spec, (spec.style || {}).fillColor || (spec.style || {}).color || '#3388ff', head); }
          el('span', '', head).textContent = self.t(spec.label) +
            (spec.classify && spec.classify.title ? ' — ' + self.t(spec.classify.title) : '');
          if (cls && cls.type === 'categorical') {
            cls.classes.forEach(function (c) {
              if (c.count === 0) { return; }  // inline layer without this class
              var row = el('div', 'riskmap-legend-row', blk);
              self._legendSwatch(spec, c.color, row);
              el('span', '', row).textContent = self.t(c.label) + (c.count !== undefined ? ' (' + c.count + ')' : '');
            });
          } else if (cls && cls.type === 'graduated') {
            cls.colors.forEach(function (c, i) {
              var row = el('div', 'riskmap-legend-row riskmap-legend-grad', blk);
              self._legendSwatch(spec, c, row);
              var lo = cls.breaks[i], hi = cls.breaks[i + 1];
              var txt = (i === cls.colors.length - 1 && !(hi < 1e300)) ? '≥ ' + fmtNum(lo) :
                fmtNum(lo) + ' – ' + fmtNum(hi);
              el('span', '', row).textContent = txt + (cls.unit ? ' ' + cls.unit : '') +
                (cls.counts ? ' (' + cls.counts[i] + ')' : '');
            });
          }
          var note = spec.note ? self.t(spec.note) : '';
          var status = self._statusText(spec.id);
          if (note || status) {
            el('div', 'riskmap-legend-note', blk).textContent = [note, status].filter(Boolean).join(' · ');
          }
        });
        if (cfg.footnote) { el('div', 'riskmap-legend-note riskmap-footnote', div).textContent = self.t(cfg.footnote); }
      }
    });
    this.legend = new Ctl();
    this.legend.addTo(map);
    this.controls.push(this.legend);
  };

  // --- title / publish header ------------------------------------------------------------
  App.prototype._addTitle = function () {
    var self = this;
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () { this.div = el('div', 'riskmap-title riskmap-box'); this.render(); return this.div; },
      render: function () { this.div.textContent = self.t(self.cfg.title); }
    });
    var c = new Ctl();
    c.addTo(this.map);
    this.controls.push(c);
  };
  App.prototype._addPublishHeader = function (pub) {
    var self = this;
    var container = this.map.getContainer();
    L.DomUtil.addClass(container, 'riskmap-publish');
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () { this.div = el('div', 'riskmap-publish-header riskmap-box'); this.render(); return this.div; },
      render: function () {
        var d = this.div;
        d.innerHTML = '';
        el('div', 'riskmap-publish-title', d).textContent = self.t(pub.title || self.cfg.title);
        var meta = el('div', 'riskmap-publish-meta', d);
        [[UI.issued, pub.authority], [UI.notice, pub.notice], [UI.date, pub.date]].forEach(function (r) {
          if (!r[1]) { return; }
          var row = el('div', '', meta);
          row.textContent = self.t(r[0]) + ': ' + self.t(r[1]);
        });
        if (pub.text) { el('div', 'riskmap-publish-text', d).textContent = self.t(pub.text); }
      }
    });
    var c = new Ctl();
    c.addTo(this.map);
    this.controls.push(c);
  };

  // --- info panels (overview progress, compound ranking …) -------------------------------
  App.prototype._addPanel = function (panel) {
    var self = this;
    var Ctl = L.Control.extend({
      options: {position: panel.position || 'bottomleft'},
      onAdd: function () {
        this.div = el('div', 'riskmap-panel riskmap-box');
        this.div.setAttribute('data-panel', panel.id || '');
        L.DomEvent.disableClickPropagation(this.div);
        L.DomEvent.disableScrollPropagation(this.div);
        this.render();
        return this.div;
      },
      render: function () {
        var d = this.div;
        d.innerHTML = '';
        el('div', 'riskmap-box-title', d).textContent = self.t(panel.title);
        var tbl = el('table', '', d);
        if (panel.columns) {
          var hr = el('tr', '', tbl);
          panel.columns.forEach(function (c) { el('th', '', hr).textContent = self.t(c); });
        }
        (panel.rows || []).forEach(function (r) {
          var tr_ = el('tr', r.status ? 'riskmap-status-' + r.status : '', tbl);
          r.cells.forEach(function (c) { el('td', '', tr_).textContent = self.t(c); });
        });
        if (panel.note) { el('div', 'riskmap-legend-note', d).textContent = self.t(panel.note); }
      }
    });
    var c = new Ctl();
    c.addTo(this.map);
    this.controls.push(c);
  };

  // --- search by id / name -----------------------------------------------------------------
  App.prototype._addSearch = function () {
    var self = this, map = this.map;
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-search leaflet-bar riskmap-box');
        L.DomEvent.disableClickPropagation(div);
        var inp = el('input', '', div);
        inp.type = 'search';
        this.inp = inp;
        var out = el('div', 'riskmap-search-results', div);
        this.out = out;
        L.DomEvent.on(inp, 'keydown', function (ev) {
          if (ev.key === 'Enter') { self.search(inp.value, out); }
        });
        this.render();
        return div;
      },
      render: function () { this.inp.placeholder = self.t(UI.search); }
    });
    var c = new Ctl();
    c.addTo(map);
    this.controls.push(c);
  };
  App.prototype._show = function (l) {
    var map = this.map;
    // no animation: the popup opened next is panned clear of the controls from the final view
    if (l.getBounds) { map.fitBounds(l.getBounds(), {maxZoom: 17, animate: false}); }
    else { map.setView(l.getLatLng(), Math.max(map.getZoom(), 16), {animate: false}); }
    var spec = l.riskmapSpec;
    if (spec && !l.getPopup()) { this._bindPopup(spec, l); }
    if (l.openPopup) { l.openPopup(); }
  };
  App.prototype.search = function (q, out) {
    var self = this, key = String(q || '').trim().toLowerCase();
    out.innerHTML = '';
    if (!key) { return; }
    var hits = [];
    Object.keys(this.layers).forEach(function (id) {
      var e = self.layers[id];
      Object.keys(e.index).forEach(function (k) {
        if (hits.length < 10 && k.indexOf(key) >= 0) { hits.push([e, k, e.index[k]]); }
      });
    });
    hits.sort(function (a, b) { return (a[1] === key ? 0 : 1) - (b[1] === key ? 0 : 1); });
    hits.forEach(function (h) {
      var a = el('a', 'riskmap-search-hit', out);
      a.href = '#';
      a.textContent = self.t(h[0].spec.label) + ': ' + h[1];
      L.DomEvent.on(a, 'click', function (ev) {
        L.DomEvent.preventDefault(ev);
        if (!self.map.hasLayer(h[0].layer)) { h[0].layer.addTo(self.map); }
        self._show(h[2]);
      });
    });
    if (hits.length) {
      if (hits[0][1] === key) { self._show(hits[0][2]); }
      return;
    }
    // remote layers: GET {url}/{featureId}
    var remote = Object.keys(this.layers).map(function (id) { return self.layers[id]; })
      .filter(function (e) { return e.spec.remote; });
    var tries = remote.map(function (e) {
      return global.fetch(e.spec.remote.url + '/' + encodeURIComponent(q.trim()),
        {credentials: 'same-origin', headers: {'Accept': 'application/geo+json'}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (f) {
          if (!f || !f.geometry) { return false; }
          var fc = {type: 'FeatureCollection', features: [f]};
          var tmp = self._geojsonLayer(e.spec).addData(self.gcj ? shiftGeojson(fc) : fc).addTo(self.map);
          tmp.eachLayer(function (l) { l.riskmapSpec = e.spec; self._show(l); });
          return true;
        }).catch(function () { return false; });
    });
    Promise.all(tries).then(function (r) {
      if (r.indexOf(true) < 0) { el('div', 'riskmap-search-none', out).textContent = self.t(UI.noMatch); }
    });
  };

  // --- measure tool (geodesic distance via map.distance; spherical polygon area) ----------
  function sphericalArea(latlngs) {
    var R = 6378137, a = 0, n = latlngs.length, d = Math.PI / 180;
    if (n < 3) { return 0; }
    for (var i = 0; i < n; i++) {
      var p1 = latlngs[i], p2 = latlngs[(i + 1) % n];
      a += (p2.lng - p1.lng) * d * (2 + Math.sin(p1.lat * d) + Math.sin(p2.lat * d));
    }
    return Math.abs(a * R * R / 2);
  }
  App.prototype._addMeasure = function () {
    var self = this, map = this.map;
    var state = {on: false, pts: [], line: null, poly: null};
    function fmtLen(m) { return m >= 1000 ? fmtNum(m / 1000, 3) + ' km' : fmtNum(m, 1) + ' m'; }
    function fmtArea(a) { return a >= 1e6 ? fmtNum(a / 1e6, 3) + ' km²' : fmtNum(a, 0) + ' m²'; }
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-measure leaflet-bar');
        var a = el('a', 'riskmap-btn', div);
        a.href = '#';
        a.innerHTML = '<svg width="18" height="18" viewBox="0 0 18 18" style="margin-top:6px"><path d="M2 12L12 2l4 4L6 16z M5 9l2 2 M8 6l2 2 M11 3l2 2" fill="none" stroke="#222" stroke-width="1.5"/></svg>';
        this.a = a;
        this.out = el('div', 'riskmap-measure-out riskmap-box', div);
        this.out.style.display = 'none';
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.on(a, 'click', function (ev) { L.DomEvent.preventDefault(ev); ctl.toggle(); });
        this.render();
        return div;
      },
      render: function () { this.a.title = self.t(UI.measure); this.update(); },
      toggle: function () {
        state.on = !state.on;
        state.pts = [];
        if (state.line) { map.removeLayer(state.line); state.line = null; }
        if (state.poly) { map.removeLayer(state.poly); state.poly = null; }
        L.DomUtil[state.on ? 'addClass' : 'removeClass'](this.a, 'active');
        if (state.on) { self.setClickMode('measure', addPoint, function () { if (state.on) { ctl.toggle(); } }); }
        else { self.clearClickMode('measure'); }
        if (state.on) { map.doubleClickZoom.disable(); } else { map.doubleClickZoom.enable(); }
        this.out.style.display = state.on ? 'block' : 'none';
        this.update();
      },
      update: function () {
        if (!this.out) { return; }
        var len = 0;
        for (var i = 1; i < state.pts.length; i++) { len += map.distance(state.pts[i - 1], state.pts[i]); }
        var txt = self.t(UI.measureHelp);
        if (state.pts.length > 1) { txt = self.t(UI.distance) + ': ' + fmtLen(len); }
        if (state.pts.length > 2) { txt += ' · ' + self.t(UI.area) + ': ' + fmtArea(sphericalArea(state.pts)); }
        this.out.textContent = txt;
        this.out.setAttribute('data-length-m', len.toFixed(2));
      }
    });
    var ctl = new Ctl();
    ctl.addTo(map);
    this.controls.push(ctl);
    function addPoint(e) {
      if (!state.on) { return; }
      state.pts.push(e.latlng);
      if (!state.line) { state.line = L.polyline([], {color: '#d00', weight: 2, dashArray: '4 4', interactive: false}).addTo(map); }
      state.line.setLatLngs(state.pts);
      if (state.pts.length > 2) {
        if (!state.poly) { state.poly = L.polygon([], {color: '#d00', weight: 0, fillOpacity: 0.1, interactive: false}).addTo(map); }
        state.poly.setLatLngs(state.pts);
      }
      ctl.update();
      map.closePopup();
    }
    map.on('dblclick', function () { if (state.on) { state.on = true; ctl.toggle(); ctl.out.style.display = 'block'; } });
    this.measure = {state: state, control: ctl};
  };

  // --- fullscreen, coordinates, language ----------------------------------------------------
  App.prototype._addFullscreen = function () {
    var self = this, map = this.map;
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-fullscreen leaflet-bar');
        var a = el('a', 'riskmap-btn', div);
        a.href = '#';
        a.innerHTML = '<svg width="16" height="16" viewBox="0 0 16 16" style="margin-top:7px"><path d="M1 6V1h5M10 1h5v5M15 10v5h-5M6 15H1v-5" fill="none" stroke="#222" stroke-width="2"/></svg>';
        this.a = a;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.on(a, 'click', function (ev) {
          L.DomEvent.preventDefault(ev);
          var c = map.getContainer(), d = global.document;
          if (d.fullscreenElement) { d.exitFullscreen(); } else if (c.requestFullscreen) { c.requestFullscreen(); }
        });
        global.document.addEventListener('fullscreenchange', function () { map.invalidateSize(); });
        this.render();
        return div;
      },
      render: function () { this.a.title = self.t(UI.fullscreen); }
    });
    var c = new Ctl();
    c.addTo(map);
    this.controls.push(c);
  };
  App.prototype._addCoords = function () {
    var self = this, map = this.map;
    var Ctl = L.Control.extend({
      options: {position: 'bottomleft'},
      onAdd: function () { this.div = el('div', 'riskmap-coords riskmap-box'); return this.div; }
    });
    var c = new Ctl();
    c.addTo(map);
    map.on('mousemove', function (e) {
      var lon = e.latlng.lng, lat = e.latlng.lat;
      if (self.gcj) { var w = fromGcj(lon, lat); lon = w[0]; lat = w[1]; }
      c.div.textContent = lon.toFixed(6) + ', ' + lat.toFixed(6) + ' (CGCS2000)';
    });
  };
  App.prototype._addLangSwitch = function () {
    var self = this, map = this.map;
    var Ctl = L.Control.extend({
      options: {position: 'topright'},
      onAdd: function () {
        var div = el('div', 'riskmap-lang leaflet-bar');
        var a = el('a', 'riskmap-btn', div);
        a.href = '#';
        this.a = a;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.on(a, 'click', function (ev) {
          L.DomEvent.preventDefault(ev);
          self.setLang(self.lang === 'zh' ? 'en' : 'zh');
        });
        this.render();
        return div;
      },
      render: function () { this.a.textContent = self.lang === 'zh' ? 'EN' : '中'; }
    });
    var c = new Ctl();
    c.addTo(map);
    this.controls.push(c);
  };
  App.prototype.setLang = function (lang) {
    this.lang = lang;
    this.controls.forEach(function (c) { if (c.render) { c.render(); } });
    this.map.closePopup();
    global.document.documentElement.setAttribute('lang', lang === 'en' ? 'en' : 'zh-CN');
  };

  // --- hazmat route request form --------------------------------------------------------------
  var ROUTE_COLORS = ['#1a9641', '#2b83ba', '#984ea3', '#ff7f00', '#a65628'];
  App.prototype._addRouteForm = function (rf) {
    var self = this, map = this.map;
    var st = {pick: null, origin: null, destination: null, markers: {}, routes: L.featureGroup().addTo(map)};
    this.routeState = st;
    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-route riskmap-box');
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        this.div = div;
        this.render();
        return div;
      },
      render: function () {
        var d = this.div, ctl = this;
        d.innerHTML = '';
        el('div', 'riskmap-box-title', d).textContent = self.t(UI.routeTitle);
        ['origin', 'destination'].forEach(function (k) {
          var row = el('div', 'riskmap-route-row', d);
          var b = el('button', 'riskmap-route-pick', row);
          b.type = 'button';
          b.name = k;
          b.textContent = self.t(UI[k]);
          var span = el('span', 'riskmap-route-' + k, row);
          span.textContent = st[k] ? st[k][0].toFixed(5) + ', ' + st[k][1].toFixed(5) : self.t(UI.pick);
          L.DomEvent.on(b, 'click', function () { st.pick = k; map.getContainer().style.cursor = 'crosshair'; });
        });
        var r1 = el('div', 'riskmap-route-row', d);
        el('label', '', r1).textContent = self.t(UI.departAt) + ' ';
        var t = el('input', '', r1);
        t.type = 'datetime-local';
        t.name = 'depart_at';
        t.value = ctl.depart || rf.departAt || '';
        L.DomEvent.on(t, 'change', function () { ctl.depart = t.value; });
        var r2 = el('div', 'riskmap-route-row', d);
        el('label', '', r2).textContent = self.t(UI.alternatives) + ' ';
        var k = el('input', '', r2);
        k.type = 'number'; k.min = 1; k.max = 5; k.name = 'alternatives';
        k.value = ctl.k || rf.alternatives || 3;
        L.DomEvent.on(k, 'change', function () { ctl.k = k.value; });
        var r3 = el('div', 'riskmap-route-row', d);
        el('label', '', r3).textContent = self.t(UI.objective) + ' ';
        var o = el('select', '', r3);
        o.name = 'objective';
        ['time', 'distance', 'risk'].forEach(function (v) {
          var opt = el('option', '', o);
          opt.value = v;
          opt.textContent = self.t(UI[v === 'distance' ? 'length' : v]);
        });
        o.value = ctl.objective || 'time';
        L.DomEvent.on(o, 'change', function () { ctl.objective = o.value; });
        var go = el('button', 'riskmap-route-go', d);
        go.type = 'button';
        go.textContent = self.t(UI.route);
        L.DomEvent.on(go, 'click', function () { self.requestRoute(t.value, +k.value, o.value); });
        this.out = el('div', 'riskmap-route-out', d);
        if (ctl.result) { self._renderRoutes(ctl.result); }
      }
    });
    var ctl = new Ctl();
    ctl.addTo(map);
    this.controls.push(ctl);
    this.routeControl = ctl;
    map.on('click', function (e) {
      if (!st.pick) { return; }
      var k = st.pick, lon = e.latlng.lng, lat = e.latlng.lat;
      if (self.gcj) { var w = fromGcj(lon, lat); lon = w[0]; lat = w[1]; }
      st[k] = [lon, lat];
      if (st.markers[k]) { map.removeLayer(st.markers[k]); }
      st.markers[k] = L.circleMarker(e.latlng, {radius: 7, color: '#000', weight: 2,
        fillColor: k === 'origin' ? '#2ca25f' : '#de2d26', fillOpacity: 1}).addTo(map);
      st.pick = null;
      map.getContainer().style.cursor = '';
      map.closePopup();
      ctl.render();
    });
  };
  App.prototype.setRouteEnds = function (origin, destination) {  // for tests and deep links
    this.routeState.origin = origin;
    this.routeState.destination = destination;
    this.routeControl.render();
  };
  App.prototype.requestRoute = function (departAt, k, objective) {
    var self = this, st = this.routeState, rf = this.cfg.routeForm, ctl = this.routeControl;
    if (!st.origin || !st.destination) { ctl.out.textContent = self.t(UI.pick); return Promise.resolve(null); }
    var body = {origin: st.origin, destination: st.destination, alternatives: k || 3, objective: objective || 'time'};
    if (departAt) { body.depart_at = departAt.length === 16 ? departAt + ':00' : departAt; }
    ctl.out.textContent = self.t(UI.loading);
    return global.fetch(rf.url, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/geo+json, application/json'},
      body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        ctl.result = res;
        self._renderRoutes(res);
        return res;
      })
      .catch(function (err) {
        ctl.result = {ok: false, body: {detail: String(err)}};
        self._renderRoutes(ctl.result);
      });
  };
  // POST /routes answers a FeatureCollection whose features carry `feature`: one `route` per
  // alternative (rank, length_m, time_s, risk_score, zones "a;b", roads "r1;r2"), the snapped
  // `origin` / `destination` and the `refused` stretches (road_id, road_name, reason, zone_id,
  // zone_name, rule, hours, message) the unrestricted shortest way would use.
  function splitList(v) {
    if (v === null || v === undefined || v === '') { return []; }
    if (Array.isArray(v)) { return v; }
    return String(v).split(';').filter(function (x) { return x.trim() !== ''; });
  }
  function routeParts(body) {
    var out = {routes: [], refused: [], ends: []};
    if (!body) { return out; }
    var feats = [];
    if (body.type === 'FeatureCollection') { feats = body.features || []; }
    else if (body.type === 'Feature') { feats = [body]; }
    else if (body.routes || body.alternatives) {
      var r = body.routes || body.alternatives;
      feats = r.type === 'FeatureCollection' ? r.features : r;
      (body.refused || []).forEach(function (x) { out.refused.push(x.properties ? x : {properties: x}); });
    }
    feats.forEach(function (f) {
      var kind = (f.properties || {}).feature;
      if (kind === 'refused') { out.refused.push(f); }
      else if (kind === 'origin' || kind === 'destination') { out.ends.push(f); }
      else if (!kind || kind === 'route') { out.routes.push(f); }
    });
    out.routes.sort(function (x, y) { return ((x.properties || {}).rank || 0) - ((y.properties || {}).rank || 0); });
    // older shapes listed the refused roads per route
    out.routes.forEach(function (f) {
      splitList((f.properties || {}).refused).forEach(function (x) {
        out.refused.push({properties: typeof x === 'string' ? {road_id: x} : x});
      });
    });
    return out;
  }
  var REASONS = {
    zone_forbidden: {zh: '禁行区', en: 'forbidden zone'},
    zone_permit: {zh: '需通行证区域', en: 'permit zone'},
    zone_avoid: {zh: '避让区域', en: 'zone to avoid'},
    hazmat_no: {zh: '禁止危化品车辆', en: 'hazmat=no'},
    hazmat_destination: {zh: '仅限目的地车辆', en: 'destination traffic only'},
    weight: {zh: '限重', en: 'weight limit'},
    height: {zh: '限高', en: 'height limit'}
  };
  // Refused stretches grouped by road name, reason and zone: "华山路 (6): 禁行区 Z-01 … 00:00-24:00"
  function refusedGroups(refused, lang) {
    var groups = [], byKey = Object.create(null);
    refused.forEach(function (f) {
      var p = f.properties || f;
      var road = p.road_name || p.road_id || p.id || '';
      var key = [road, p.reason, p.zone_id].join('|');
      if (!own(byKey, key)) {
        var why = p.reason ? tr(own(REASONS, p.reason) || String(p.reason), lang) : (p.why || p.message || '');
        var zone = p.zone_id ? ' ' + p.zone_id + (p.zone_name ? ' ' + p.zone_name : '') : '';
        byKey[key] = {road: road, why: why + zone + (p.hours ? ' ' + p.hours : ''), ids: [], m: 0};
        groups.push(byKey[key]);
      }
      var g = byKey[key];
      if (p.road_id && g.ids.indexOf(p.road_id) < 0) { g.ids.push(p.road_id); }
      if (typeof p.length_m === 'number') { g.m += p.length_m; }
    });
    return groups.map(function (g) {
      var n = g.ids.length > 1 ? ' (' + g.ids.length + ')' : (g.ids.length === 1 && g.ids[0] !== g.road ? ' ' + g.ids[0] : '');
      return g.road + n + (g.m ? ', ' + fmtLen(g.m) : '') + (g.why ? ': ' + g.why : '');
    });
  }
  App.prototype._renderRoutes = function (res) {
    var self = this, st = this.routeState, out = this.routeControl.out;
    st.routes.clearLayers();
    out.innerHTML = '';
    var c = self.map.getContainer();
    if (!res.ok) {
      var det = res.body && (res.body.description || res.body.detail || res.body.message);
      el('div', 'riskmap-route-error', out).textContent = self.t(UI.noRoute) + ': ' +
        (typeof det === 'string' ? det : JSON.stringify(det));
      c.setAttribute('data-routes', '0');
      return;
    }
    var parts = routeParts(res.body);
    function draw(geom, style, popup) {
      if (!geom) { return; }
      var fc = {type: 'FeatureCollection', features: [{type: 'Feature', geometry: JSON.parse(JSON.stringify(geom)), properties: {}}]};
      var ly = L.geoJSON(self.gcj ? shiftGeojson(fc) : fc, {style: style,
        pointToLayer: function (f, ll) { return L.circleMarker(ll, L.extend({radius: 5}, style)); }});
      if (popup) { ly.bindTooltip(esc(popup), {sticky: true}); }
      ly.addTo(st.routes);
    }
    parts.refused.forEach(function (f) {
      var p = f.properties || {};
      draw(f.geometry, {color: '#d7191c', weight: 5, opacity: 0.8, dashArray: '6 6'},
        (p.road_name || p.road_id || '') + ': ' + (p.message || p.reason || ''));
    });
    for (var i = parts.routes.length - 1; i >= 0; i--) {  // the best route drawn last, on top
      draw(parts.routes[i].geometry, {color: ROUTE_COLORS[i % ROUTE_COLORS.length], weight: i === 0 ? 6 : 4,
        opacity: i === 0 ? 0.9 : 0.6});
    }
    parts.ends.forEach(function (f) {
      draw(f.geometry, {color: '#000', weight: 2, fillColor: '#ffffff', fillOpacity: 1});
    });
    parts.routes.forEach(function (f, i) {
      var p = f.properties || {};
      var color = ROUTE_COLORS[i % ROUTE_COLORS.length];
      var box = el('div', 'riskmap-route-alt', out);
      box.setAttribute('data-rank', String(p.rank || i + 1));
      box.style.borderLeft = '5px solid ' + color;
      var len = p.length_m, time = p.time_s, risk = p.risk_score !== undefined ? p.risk_score : p.risk;
      el('div', '', box).textContent = '#' + (p.rank || i + 1) + '  ' +
        (typeof len === 'number' ? fmtLen(len) : '') + ' · ' +
        (typeof time === 'number' ? fmtNum(time / 60, 1) + ' ' + self.t(UI.minutes) : '') +
        (typeof risk === 'number' ? ' · ' + self.t(UI.riskScore) + ' ' + fmtNum(risk, 0) : '');
      var zones = splitList(p.zones !== undefined && p.zones !== '' ? p.zones : (p.zones_passed || p.zone_ids));
      if (zones.length) {
        el('div', 'riskmap-route-zones', box).textContent = self.t(UI.zones) + ': ' +
          zones.map(function (z) { return typeof z === 'string' ? z : (z.id || z.zone_id || JSON.stringify(z)); }).join(', ');
      }
    });
    var groups = refusedGroups(parts.refused, self.lang);
    if (groups.length) {
      var rr = el('div', 'riskmap-route-refused', out);
      rr.textContent = self.t(UI.refused) + ': ';
      var ul = el('ul', '', rr);
      groups.slice(0, 8).forEach(function (g) { el('li', '', ul).textContent = g; });
      if (groups.length > 8) { el('li', '', ul).textContent = '… +' + (groups.length - 8); }
    }
    if (st.routes.getLayers().length) { self.map.fitBounds(st.routes.getBounds(), {padding: [30, 30]}); }
    c.setAttribute('data-routes', String(parts.routes.length));
    c.setAttribute('data-refused', String(parts.refused.length));
  };
  function fmtLen(m) { return m >= 1000 ? fmtNum(m / 1000, 2) + ' km' : fmtNum(m, 0) + ' m'; }

  // ================================================================ shared map features
  // Road names along lines, clustered findings, the findings list, the map click mode,
  // collapsible boxes and popups kept clear of the controls. Every audience map gets them
  // from RiskMap.init; see docs/dev/MAPS.md for the calls other scripts may use.
  var SHARED_UI = {
    findings: {zh: '问题清单', en: 'Findings list'},
    allKinds: {zh: '全部类型', en: 'all kinds'},
    allSeverities: {zh: '全部等级', en: 'all severities'},
    allStatuses: {zh: '全部状态', en: 'all statuses'},
    filter: {zh: '筛选编号、对象或描述…', en: 'filter id, feature or text…'},
    countOf: {zh: '{n} / {m} 条', en: '{n} of {m}'},
    more: {zh: '另有 {n} 条，请缩小筛选', en: '{n} more; narrow the filter'}
  };
  function fill(s, vars) {
    Object.keys(vars || {}).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    return s;
  }
  // "<a href>" of a popup: url template with {field} filled from the feature (URL-encoded).
  function popupLink(link, props, lang) {
    if (!link || !link.url) { return ''; }
    var missing = false;
    var url = link.url.replace(/\{([A-Za-z0-9_]+)\}/g, function (m, k) {
      var v = props[k];
      if (v === null || v === undefined || v === '') { missing = true; return ''; }
      return encodeURIComponent(String(v));
    });
    if (missing) { return ''; }
    return '<div class="riskmap-popup-link"><a href="' + esc(url) + '">' + esc(tr(link.label, lang)) + '</a></div>';
  }
  function flatLatLngs(lls, out) {
    out = out || [];
    if (!lls || !lls.length) { return out; }
    if (lls[0] && typeof lls[0].lat === 'number') { out.push(lls); return out; }
    lls.forEach(function (x) { flatLatLngs(x, out); });
    return out;
  }
  function layerCenter(l) {
    if (l.getLatLng) { return l.getLatLng(); }
    if (l.getBounds) { var b = l.getBounds(); return b.isValid() ? b.getCenter() : null; }
    return null;
  }
  // rank of a feature's class: 0 = most severe (first categorical class / last graduated)
  function classRank(cls, props) {
    if (!cls) { return 99; }
    var v = props ? props[cls.field] : undefined;
    if (cls.type === 'categorical') {
      for (var i = 0; i < cls.classes.length; i++) {
        if (String(cls.classes[i].value) === String(v)) { return i; }
      }
      return cls.classes.length;
    }
    if (cls.type === 'graduated' && typeof v === 'number' && isFinite(v)) {
      for (var j = 0; j < cls.colors.length; j++) {
        if (v < cls.breaks[j + 1]) { return cls.colors.length - 1 - j; }
      }
      return 0;
    }
    return 99;
  }

  App.prototype._initShared = function () {
    var self = this, map = this.map, c = map.getContainer();
    this.clickMode = null;
    this._initCanvasEvents();
    map.on('click', function (e) {
      var m = self.clickMode;
      if (m && m.onClick) { m.onClick(e); }
    });
    this._initLabels();
    this._initClusters();
    if (!this.cfg.publish && this.cfg.findingsList !== false) { this._addFindingsList(this.cfg.findingsList || {}); }
    if (this.cfg.registry) { this._liveRegistry(this.cfg.registry); }
    this._initCollapsible();
    map.on('popupopen', function (e) { self._placePopup(e.popup); });
    map.on('popupclose', function () { L.DomUtil.removeClass(c, 'riskmap-popup-open'); });
    var pending = null;
    this._sharedRefresh = function () {  // labels and clusters follow the view and the layer list
      if (pending) { return; }
      pending = global.setTimeout(function () { pending = null; self._renderLabels(); self._updateClusters(); }, 30);
    };
    map.on('zoomend moveend', this._sharedRefresh);
    this.controls.push({render: this._sharedRefresh});  // labels follow the language
    map.whenReady(function () { self._renderLabels(); self._updateClusters(); });  // once a view is set
  };

  // --- clicks and hovers through stacked canvases ---------------------------------------------
  // Each pane (context, main, findings) draws on its own canvas and the topmost canvas takes
  // every mouse event, so features on lower canvases (buildings, roads, HCAs) could never be
  // clicked or hovered. A capturing listener hands the event to the highest canvas that has
  // an interactive feature under the pointer.
  App.prototype._initCanvasEvents = function () {
    var self = this, map = this.map, c = map.getContainer(), lastMove = 0;
    function stacked() {
      var out = [];
      Object.keys(self.renderers || {}).forEach(function (k) {
        var r = self.renderers[k];
        if (r._container && r._map) { out.push({r: r, z: PANES[k] || 400}); }
      });
      return out.sort(function (a, b) { return b.z - a.z; }).map(function (x) { return x.r; });
    }
    function hit(r, point) {
      for (var o = r._drawFirst; o; o = o.next) {
        var l = o.layer;
        if (l.options.interactive && l._containsPoint && l._containsPoint(point)) { return true; }
      }
      return false;
    }
    function route(e) {
      var rs = stacked(), owner = null;
      for (var i = 0; i < rs.length; i++) { if (rs[i]._container === e.target) { owner = rs[i]; } }
      if (!owner || rs.length < 2) { return; }
      if (e.type === 'mousemove') {
        var now = Date.now();
        if (now - lastMove < 32) { return; }
        lastMove = now;
      }
      var point = map.mouseEventToLayerPoint(e), target = null;
      for (var j = 0; j < rs.length; j++) { if (hit(rs[j], point)) { target = rs[j]; break; } }
      if (!target || target === owner) {
        if (e.type === 'mousemove') {  // leave any hover on the other canvases
          rs.forEach(function (r) { if (r !== owner && r._hoveredLayer) { r._handleMouseOut(e); } });
          if (!target) { L.DomUtil.removeClass(owner._container, 'leaflet-interactive'); }
        }
        return;
      }
      e.stopPropagation();
      if (e.type === 'mousemove') {
        rs.forEach(function (r) { if (r !== target && r._hoveredLayer) { r._handleMouseOut(e); } });
        target._mouseHoverThrottled = false;
        target._onMouseMove(e);
        L.DomUtil.addClass(owner._container, 'leaflet-interactive');  // the pointer cursor
      } else {
        target._onClick(e);
      }
    }
    ['click', 'dblclick', 'mousedown', 'mouseup', 'contextmenu', 'mousemove'].forEach(function (t) {
      c.addEventListener(t, route, true);
    });
  };

  // --- map click mode: one owner of map clicks at a time --------------------------------------
  // While a mode is set, a click anywhere — on the map or on a feature — goes to its onClick
  // with the clicked latlng and no popup opens. The measure tool uses it; the route form's
  // origin/destination picking counts as a mode too.
  App.prototype.setClickMode = function (name, onClick, onExit) {
    var old = this.clickMode, c = this.map.getContainer();
    this.clickMode = null;
    if (old && old.name !== name && old.onExit) { old.onExit(); }
    this.clickMode = name ? {name: name, onClick: onClick, onExit: onExit} : null;
    c.style.cursor = name ? 'crosshair' : '';
    if (name) { c.setAttribute('data-click-mode', name); this.map.closePopup(); }
    else { c.removeAttribute('data-click-mode'); }
  };
  App.prototype.clearClickMode = function (name) {
    if (this.clickMode && (!name || this.clickMode.name === name)) { this.setClickMode(null); }
  };
  App.prototype.clickModeActive = function () {
    return !!(this.clickMode || (this.routeState && this.routeState.pick));
  };

  // --- labels along lines (road names) ---------------------------------------------------------
  // A layer spec with `labelField` (a property) gets, from zoom `labelMinZoom`, one label per name
  // in view, on that name's longest on-screen segment, turned along it; at most 120 labels.
  App.prototype._initLabels = function () {
    var map = this.map;
    if (!map.getPane('riskmap-labels')) {
      var pane = map.createPane('riskmap-labels');
      pane.style.zIndex = 460;
      pane.style.pointerEvents = 'none';
    }
    this.labelLayer = L.layerGroup().addTo(map);
  };
  App.prototype._renderLabels = function () {
    var self = this, map = this.map, z = map.getZoom(), view = map.getBounds();
    this.labelLayer.clearLayers();
    var n = 0;
    Object.keys(this.layers).forEach(function (id) {
      var e = self.layers[id], spec = e.spec;
      if (!spec.labelField || !map.hasLayer(e.layer) || z < (spec.labelMinZoom || 16)) { return; }
      var field = typeof spec.labelField === 'string' ? spec.labelField : tr(spec.labelField, self.lang);
      var best = Object.create(null);
      e.layer.eachLayer(function (l) {
        var p = (l.feature && l.feature.properties) || {}, name = p[field];
        if (name === null || name === undefined || name === '' || !l.getLatLngs) { return; }
        if (!view.intersects(l.getBounds())) { return; }
        flatLatLngs(l.getLatLngs()).forEach(function (part) {
          for (var i = 1; i < part.length; i++) {
            var a = map.latLngToContainerPoint(part[i - 1]), b = map.latLngToContainerPoint(part[i]);
            var len = a.distanceTo(b);
            var mid = L.latLng((part[i - 1].lat + part[i].lat) / 2, (part[i - 1].lng + part[i].lng) / 2);
            if (!view.contains(mid)) { continue; }
            var cur = own(best, String(name));
            if (!cur || len > cur.len) {
              var ang = Math.atan2(b.y - a.y, b.x - a.x) * 180 / Math.PI;
              if (ang > 90) { ang -= 180; } else if (ang < -90) { ang += 180; }
              best[String(name)] = {len: len, at: mid, ang: ang};
            }
          }
        });
      });
      Object.keys(best).sort(function (a, b) { return best[b].len - best[a].len; }).forEach(function (name) {
        var b = best[name];
        if (n >= 120 || b.len < 30) { return; }
        n += 1;
        L.marker(b.at, {interactive: false, keyboard: false, pane: 'riskmap-labels',
          icon: L.divIcon({className: 'riskmap-label', iconSize: null,
            html: '<span style="transform: translate(-50%, -50%) rotate(' + b.ang.toFixed(1) + 'deg)">' +
              esc(name) + '</span>'})}).addTo(self.labelLayer);
      });
    });
    map.getContainer().setAttribute('data-labels', String(n));
  };

  // --- clustered findings --------------------------------------------------------------------
  // A layer spec with `cluster: {maxZoom}` is shadowed, up to that zoom, by markers at each
  // feature's centre, clustered (vendored Leaflet.markercluster) and coloured by the most severe
  // class inside; a marker click zooms to the feature and opens its popup.
  App.prototype._initClusters = function () {
    var self = this;
    this.clusters = {};
    if (!L.markerClusterGroup) { return; }
    if (!isFinite(this.map.getMaxZoom())) { this.map.options.maxZoom = 22; }  // clusters need one
    Object.keys(this.layers).forEach(function (id) {
      var e = self.layers[id];
      if (e.spec.cluster && !e.spec.remote) { self._makeCluster(e); }
    });
  };
  App.prototype._makeCluster = function (entry) {
    var self = this, spec = entry.spec;
    var worst = function (markers) {
      var r = 99, color = '#888888';
      markers.forEach(function (m) { if (m.options.rank < r) { r = m.options.rank; color = m.options.color; } });
      return color;
    };
    var cg = L.markerClusterGroup({
      maxClusterRadius: 45, showCoverageOnHover: false, spiderfyOnMaxZoom: false,
      zoomToBoundsOnClick: true, removeOutsideVisibleBounds: true, animate: false,
      iconCreateFunction: function (cl) {
        var kids = cl.getAllChildMarkers(), n = cl.getChildCount();
        var size = n < 10 ? 28 : (n < 100 ? 34 : 40);
        return L.divIcon({className: 'riskmap-cluster', iconSize: [size, size],
          html: '<div style="background:' + worst(kids) + '"><span>' + n + '</span></div>'});
      }
    });
    var n = 0;
    entry.layer.eachLayer(function (l) {
      var at = layerCenter(l);
      if (!at) { return; }
      var p = (l.feature && l.feature.properties) || {};
      var color = classColor(spec.classify, p) || (spec.style || {}).color || '#d7301f';
      var m = L.marker(at, {rank: classRank(spec.classify, p), color: color, keyboard: false,
        icon: L.divIcon({className: 'riskmap-cluster riskmap-cluster-one', iconSize: [16, 16],
          html: '<div style="background:' + color + '"></div>'})});
      m.on('click', function () { self._show(l); });
      if (spec.tooltip && p[spec.tooltip] !== undefined && p[spec.tooltip] !== null) {
        m.bindTooltip(esc(p[spec.tooltip]), {direction: 'top'});
      }
      cg.addLayer(m);
      n += 1;
    });
    this.clusters[spec.id] = {group: cg, maxZoom: spec.cluster.maxZoom || 15, n: n};
  };
  App.prototype._updateClusters = function () {
    var self = this, map = this.map, z = map.getZoom(), shown = 0;
    Object.keys(this.clusters || {}).forEach(function (id) {
      var c = self.clusters[id], e = self.layers[id];
      var want = map.hasLayer(e.layer) && z <= c.maxZoom;
      if (want && !map.hasLayer(c.group)) { c.group.addTo(map); }
      if (!want && map.hasLayer(c.group)) { map.removeLayer(c.group); }
      if (want) { shown += c.n; }
    });
    map.getContainer().setAttribute('data-clustered', String(shown));
  };

  // --- findings list -------------------------------------------------------------------------
  // cfg.findingsList (false: none): {layers: [ids] (default: every inline layer of the
  // 'findings' group), kind, severity, status (property names; status only when given),
  // statusLabels, title, position}. Rows filter by kind, severity, status and text, and a
  // click zooms to the finding and opens its popup.
  App.prototype._addFindingsList = function (opt) {
    var self = this, map = this.map;
    var ids = opt.layers || (this.cfg.layers || []).filter(function (s) {
      return s.group === 'findings' && !s.remote;
    }).map(function (s) { return s.id; });
    ids = ids.filter(function (id) { return self.layers[id] && !self.layers[id].spec.remote; });
    var kindF = opt.kind || 'kind', sevF = opt.severity || 'severity', stF = opt.status || null;
    var rows = [];
    ids.forEach(function (id) {
      var e = self.layers[id];
      e.layer.eachLayer(function (l) {
        var p = (l.feature && l.feature.properties) || {};
        rows.push({layer: l, entry: e, p: p});
      });
    });
    if (!rows.length) { return; }
    var fieldEnum = function (key) {
      for (var i = 0; i < ids.length; i++) {
        var fs = ((self.layers[ids[i]].spec.popup || {}).fields) || [];
        for (var j = 0; j < fs.length; j++) { if (fs[j].key === key && fs[j].enum) { return fs[j].enum; } }
      }
      return opt.statusLabels && key === stF ? opt.statusLabels : null;
    };
    var values = function (key) {
      var seen = Object.create(null), out = [];
      rows.forEach(function (r) {
        var v = r.p[key];
        if (v !== null && v !== undefined && v !== '' && !seen[v]) { seen[v] = 1; out.push(String(v)); }
      });
      return out.sort();
    };
    var state = {kind: '', severity: '', status: '', q: ''};
    this.findingsList = {rows: rows, state: state};
    var Ctl = L.Control.extend({
      options: {position: opt.position || 'bottomleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-findings riskmap-box');
        div.setAttribute('data-panel', 'findings');
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        this.div = div;
        this.render();
        return div;
      },
      render: function () {
        var d = this.div, ctl = this;
        d.innerHTML = '';
        this.head = el('div', 'riskmap-box-title', d);
        var body = el('div', 'riskmap-findings-body', d);
        var bar = el('div', 'riskmap-findings-filters', body);
        var select = function (key, field, allLabel) {
          var vs = values(field);
          if (vs.length < 1) { return; }
          var s = el('select', '', bar);
          s.name = key;
          var o0 = el('option', '', s); o0.value = ''; o0.textContent = self.t(allLabel);
          var en = fieldEnum(field);
          vs.forEach(function (v) {
            var o = el('option', '', s);
            o.value = v;
            o.textContent = en && own(en, v) ? self.t(own(en, v)) : v;
          });
          s.value = state[key];
          L.DomEvent.on(s, 'change', function () { state[key] = s.value; ctl.fill(); });
        };
        select('kind', kindF, SHARED_UI.allKinds);
        select('severity', sevF, SHARED_UI.allSeverities);
        if (stF) { select('status', stF, SHARED_UI.allStatuses); }
        var q = el('input', '', bar);
        q.type = 'search'; q.name = 'q'; q.placeholder = self.t(SHARED_UI.filter); q.value = state.q;
        L.DomEvent.on(q, 'input', function () { state.q = q.value; ctl.fill(); });
        this.count = el('div', 'riskmap-findings-count', body);
        this.list = el('div', 'riskmap-findings-list', body);
        this.fill();
      },
      fill: function () {
        var list = this.list, q = state.q.trim().toLowerCase(), shown = 0, match = 0;
        list.innerHTML = '';
        var kEnum = fieldEnum(kindF);
        rows.forEach(function (r) {
          var p = r.p;
          if (state.kind && String(p[kindF]) !== state.kind) { return; }
          if (state.severity && String(p[sevF]) !== state.severity) { return; }
          if (state.status && String(p[stF]) !== state.status) { return; }
          if (q) {
            var hay = [p.finding_id, p.feature_id, p.other_id, p[tr({zh: 'message_zh', en: 'message_en'}, self.lang)]]
              .join(' ').toLowerCase();
            if (hay.indexOf(q) < 0) { return; }
          }
          match += 1;
          if (shown >= 200) { return; }
          shown += 1;
          var a = el('a', 'riskmap-findings-row', list);
          a.href = '#';
          a.setAttribute('data-finding', String(p.finding_id || p.feature_id || ''));
          var sw = el('span', 'riskmap-swatch riskmap-swatch-point', a);
          sw.style.background = classColor(r.entry.spec.classify, p) || '#888';
          var kind = kEnum && own(kEnum, String(p[kindF])) ? self.t(own(kEnum, String(p[kindF]))) : (p[kindF] || '');
          el('span', 'riskmap-findings-kind', a).textContent = kind;
          el('span', 'riskmap-findings-id', a).textContent = ' ' + (p.feature_id || p.finding_id || '') +
            (p.station ? ' ' + p.station : '');
          L.DomEvent.on(a, 'click', function (ev) {
            L.DomEvent.preventDefault(ev);
            if (!map.hasLayer(r.entry.layer)) {
              r.entry.layer.addTo(map);
              if (self.layerControl) { self.layerControl.render(); }
              if (self.legend) { self.legend.render(); }
            }
            if (self._phone()) { L.DomUtil.addClass(self.findingsControl.div, 'collapsed'); }
            self._show(r.layer);
          });
        });
        if (match > shown) {
          el('div', 'riskmap-legend-note', list).textContent = fill(self.t(SHARED_UI.more), {n: match - shown});
        }
        this.head.textContent = self.t(opt.title || SHARED_UI.findings) + ' (' + rows.length + ')';
        this.count.textContent = fill(self.t(SHARED_UI.countOf), {n: match, m: rows.length});
        this.div.setAttribute('data-count', String(match));
      }
    });
    this.findingsControl = new Ctl();
    this.findingsControl.addTo(map);
    this.controls.push(this.findingsControl);
  };

  // --- registry statuses read afresh (overview) -------------------------------------------------
  // cfg.registry = {url, layer, field, limit, classify, popupField, labels, link}: the hazards
  // are read page by page (GET /registry/hazards) and the layer's findings recoloured by their
  // current status ("unregistered" when absent), with the legend, clusters and list following,
  // so a served page cached before a registry edit still shows today's statuses.
  App.prototype._liveRegistry = function (rr) {
    var self = this, map = this.map, e = this.layers[rr.layer];
    if (!e || !global.fetch) { return; }
    var st = Object.create(null), n = 0;
    function step(offset) {
      return global.fetch(rr.url + '?limit=' + rr.limit + '&offset=' + offset,
        {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          if (!j || !j.hazards) { return n > 0; }
          j.hazards.forEach(function (h) { st[String(h.hazard_id)] = h.status; n += 1; });
          var next = offset + j.hazards.length;
          if (j.hazards.length && next < j.numberMatched && next < 50000) { return step(next); }
          return true;
        });
    }
    step(0).then(function (ok) {
      if (!ok || !n) { return; }
      var spec = e.spec, counts = Object.create(null);
      if (!spec.classify || spec.classify.field !== rr.field) { spec.classify = rr.classify; }
      spec.popup = spec.popup || {fields: []};
      if (!(spec.popup.fields || []).some(function (f) { return f.key === rr.field; })) { spec.popup.fields.push(rr.popupField); }
      spec.popup.link = rr.link;
      e.layer.eachLayer(function (l) {
        var p = (l.feature && l.feature.properties) || {};
        var s = own(st, String(p.finding_id));
        p[rr.field] = s || 'unregistered';
        p.hazard_id = s ? p.finding_id : null;
        counts[p[rr.field]] = (counts[p[rr.field]] || 0) + 1;
        if (l.setStyle) { l.setStyle(featureStyle(spec, p)); }
      });
      (spec.classify.classes || []).forEach(function (c) { c.count = counts[c.value] || 0; });
      var c = self.clusters && self.clusters[spec.id];
      if (c) {
        if (map.hasLayer(c.group)) { map.removeLayer(c.group); }
        delete self.clusters[spec.id];
        self._makeCluster(e);
        self._updateClusters();
      }
      if (self.findingsControl) {
        self.findingsControl.remove();
        self.controls = self.controls.filter(function (x) { return x !== self.findingsControl; });
        var opt = L.extend({}, self.cfg.findingsList || {}, {status: rr.field, statusLabels: rr.labels});
        self._addFindingsList(opt);
        self.makeCollapsible(self.findingsControl.div);
      }
      if (self.legend) { self.legend.render(); }
      map.getContainer().setAttribute('data-registry', String(n));
    }).catch(function (err) {
      if (global.console && global.console.warn) { global.console.warn('riskmap: registry: ' + err); }
    });
  };

  // --- collapsible boxes, phone layout, popups clear of the controls -------------------------
  App.prototype._phone = function () {
    var c = this.map.getContainer();
    return c.clientWidth < 640 || c.clientHeight < 560;
  };
  // A box with a title collapses to its title on a click on it; on a phone every box but the
  // map title starts collapsed. Other scripts call app.makeCollapsible(div) for their boxes.
  App.prototype.makeCollapsible = function (div, collapsed) {
    if (L.DomUtil.hasClass(div, 'riskmap-collapsible')) { return; }
    L.DomUtil.addClass(div, 'riskmap-collapsible');
    if (collapsed === undefined ? this._phone() : collapsed) { L.DomUtil.addClass(div, 'collapsed'); }
  };
  App.prototype._initCollapsible = function () {
    var self = this, c = this.map.getContainer();
    if (this._phone()) { L.DomUtil.addClass(c, 'riskmap-phone'); }
    var boxes = c.querySelectorAll('.leaflet-control.riskmap-box');
    Array.prototype.forEach.call(boxes, function (b) {
      if (b.querySelector('.riskmap-box-title') && !L.DomUtil.hasClass(b, 'riskmap-title') &&
          !L.DomUtil.hasClass(b, 'riskmap-publish-header')) { self.makeCollapsible(b); }
    });
    L.DomEvent.on(c, 'click', function (ev) {
      var t = ev.target && ev.target.closest ? ev.target.closest('.riskmap-box-title') : null;
      var box = t ? t.closest('.riskmap-collapsible') : null;
      if (!box) { return; }
      if (L.DomUtil.hasClass(box, 'collapsed')) { L.DomUtil.removeClass(box, 'collapsed'); }
      else { L.DomUtil.addClass(box, 'collapsed'); }
    });
  };
  App.prototype._popupOptions = function () {
    var c = this.map.getContainer();
    return {maxWidth: Math.min(360, Math.max(200, c.clientWidth - 60)),
      maxHeight: Math.max(160, Math.round(c.clientHeight * 0.55)), autoPanPadding: [12, 12]};
  };
  // Pan the opened popup clear of the control corners (on a phone the lower boxes step aside
  // while a popup is open).
  App.prototype._placePopup = function (popup) {
    var c = this.map.getContainer();
    if (this._phone()) { L.DomUtil.addClass(c, 'riskmap-popup-open'); }
    var r = c.getBoundingClientRect();
    var h = function (sel) {
      var e = c.querySelector(sel);
      if (!e) { return 0; }
      var m = 0;
      Array.prototype.forEach.call(e.children, function (k) {
        if (global.getComputedStyle(k).visibility === 'hidden') { return; }
        var b = k.getBoundingClientRect();
        if (b.height > 0 && b.width > 0) { m = Math.max(m, sel.indexOf('top') > 0 ? b.bottom - r.top : r.bottom - b.top); }
      });
      return m;
    };
    var top = Math.max(h('.leaflet-top.leaflet-left'), h('.leaflet-top.leaflet-right'));
    var bottom = Math.max(h('.leaflet-bottom.leaflet-left'), h('.leaflet-bottom.leaflet-right'));
    if (top + bottom > r.height * 0.6) { top = Math.min(top, r.height * 0.3); bottom = Math.min(bottom, r.height * 0.15); }
    popup.options.autoPanPaddingTopLeft = L.point(12, top + 8);
    popup.options.autoPanPaddingBottomRight = L.point(12, bottom + 8);
    popup.options.autoPan = true;
    if (popup._adjustPan) { popup._adjustPan(); }
  };
  // Share of the map covered by controls (sampled on a 24 x 24 grid); for tests and checks.
  App.prototype.coveredFraction = function () {
    var c = this.map.getContainer(), r = c.getBoundingClientRect(), n = 24, hit = 0;
    for (var i = 0; i < n; i++) {
      for (var j = 0; j < n; j++) {
        var x = r.left + (i + 0.5) * r.width / n, y = r.top + (j + 0.5) * r.height / n;
        var e = global.document.elementFromPoint(x, y);
        if (e && e.closest && e.closest('.leaflet-control')) { hit += 1; }
      }
    }
    return hit / (n * n);
  };

  global.RiskMap = {
    init: function (map, cfg) {
      var app = new App(map, cfg);
      global.RiskMap.apps.push(app);
      global.RiskMap.app = app;
      return app;
    },
    apps: [],
    toGcj: toGcj,
    fromGcj: fromGcj,
    popupHtml: popupHtml,
    classColor: classColor,
    // the helpers the per-map scripts (police.js, fire.js) share with this one
    util: {esc: esc, own: own, tr: tr, fmtNum: fmtNum, fmtLen: fmtLen, el: el,
           shiftGeojson: shiftGeojson, fill: fill}
  };
})(window);
