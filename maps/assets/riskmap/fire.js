/* fire.js — the fire map's own controls (MIT, part of riskmap).
 *
 * Loaded after riskmap.js on the fire map (maps/fire.py). RiskMap.init is wrapped: when the
 * config carries `fire`, this file adds
 *   - the compound ranking: each row says what puts the compound there (the factors of its
 *     risk score with their values, written by maps/fire.py); a click on a row zooms to the
 *     compound and opens its popup (the 一区一策 report); top rows first, "show all" for the
 *     rest; collapsible;
 *   - zoom-dependent panes (`zoomPanes`: pane -> {max: z} shown below zoom z, {min: z} from
 *     zoom z): the district-view grid of buildings beyond reach gives way to the buildings.
 */
(function (global) {
  'use strict';
  var L = global.L, RM = global.RiskMap;
  if (!L || !RM) { return; }

  var tr = RM.util.tr, el = RM.util.el;
  // re-rendering a control inside its own click handler detaches the clicked element, and
  // Leaflet then takes the click for a click on the map: such handlers re-render just after
  function later(fn) { global.setTimeout(fn, 0); }

  var UI = {
    rank: {zh: '排名', en: 'rank'},
    compound: {zh: '小区', en: 'compound'},
    score: {zh: '风险值', en: 'score'},
    why: {zh: '主要原因', en: 'why'},
    all: {zh: '显示全部 {n} 个', en: 'show all {n}'},
    top: {zh: '只显示前 {n} 个', en: 'show the top {n}'},
    collapse: {zh: '收起', en: 'hide'},
    expand: {zh: '展开', en: 'show'},
    hint: {zh: '点击一行定位到小区并查看一区一策', en: 'click a row to zoom to the compound and its report'},
    households: {zh: '户', en: 'households'}
  };

  function findFeature(app, layerId, id) {
    var entry = app.layers[layerId], hit = null;
    if (!entry) { return null; }
    entry.layer.eachLayer(function (l) {
      var p = (l.feature && l.feature.properties) || {};
      if (!hit && (String(p.id) === id || String(p.compound_id) === id)) { hit = l; }
    });
    return hit;
  }

  // Zooms to compound `id` and opens its popup (the same way search results are shown).
  function showCompound(app, layerId, id) {
    var entry = app.layers[layerId], l = findFeature(app, layerId, id), map = app.map;
    if (!l) { return false; }
    if (!map.hasLayer(entry.layer)) { entry.layer.addTo(map); }
    if (!l.riskmapSpec) { l.riskmapSpec = entry.spec; }
    if (app._show) {
      app._show(l);
    } else {
      map.fitBounds(l.getBounds(), {maxZoom: 17});
      if (l.openPopup) { l.openPopup(); }
    }
    map.getContainer().setAttribute('data-ranking-shown', id);
    return true;
  }

  function addRanking(app, fc) {
    var rk = fc.ranking, map = app.map, t = function (l) { return app.t(l); };
    var state = {all: false, collapsed: app._phone ? app._phone() :
      (global.innerWidth !== undefined && global.innerWidth < 640)};
    var Ctl = L.Control.extend({
      options: {position: 'bottomleft'},
      onAdd: function () {
        var d = el('div', 'riskmap-panel riskmap-box riskmap-fire-ranking');
        d.setAttribute('data-panel', 'ranking');
        L.DomEvent.disableClickPropagation(d);
        L.DomEvent.disableScrollPropagation(d);
        this.div = d;
        this.render();
        return d;
      },
      render: function () {
        var d = this.div, ctl = this, lang = app.lang;
        d.innerHTML = '';
        L.DomUtil[state.collapsed ? 'addClass' : 'removeClass'](d, 'collapsed');
        var head = el('div', 'riskmap-box-title', d);
        head.textContent = t(rk.title) + ' ';
        var tog = el('a', 'riskmap-ranking-toggle', head);
        tog.href = '#';
        tog.textContent = state.collapsed ? '▸ ' + t(UI.expand) : '▾ ' + t(UI.collapse);
        L.DomEvent.on(tog, 'click', function (ev) {
          L.DomEvent.preventDefault(ev);
          state.collapsed = !state.collapsed;
          later(function () { ctl.render(); });
        });
        var body = el('div', 'riskmap-ranking-body', d);
        el('div', 'riskmap-legend-note', body).textContent = t(UI.hint);
        var tbl = el('table', '', body);
        var hr = el('tr', '', tbl);
        [UI.rank, UI.compound, UI.score, UI.why].forEach(function (c) { el('th', '', hr).textContent = t(c); });
        var rows = rk.rows || [], n = state.all ? rows.length : Math.min(rk.shown || 10, rows.length);
        rows.slice(0, n).forEach(function (r) {
          var tr_ = el('tr', 'riskmap-ranking-row' + (r.score > 0 ? '' : ' riskmap-ranking-ok'), tbl);
          tr_.setAttribute('data-compound', r.id);
          tr_.tabIndex = 0;
          el('td', 'riskmap-ranking-rank', tr_).textContent = String(r.rank);
          var name = el('td', 'riskmap-ranking-name', tr_);
          name.textContent = r.name;
          name.title = r.id + (r.households ? ' · ' + r.households + ' ' + t(UI.households) : '');
          el('td', 'riskmap-ranking-score', tr_).textContent = (+r.score).toFixed(2);
          el('td', 'riskmap-ranking-why', tr_).textContent = tr(r.reasons, lang);
          function go(ev) {
            if (ev.type === 'keydown' && ev.key !== 'Enter') { return; }
            L.DomEvent.preventDefault(ev);
            showCompound(app, fc.compoundLayer || 'compounds', r.id);
          }
          L.DomEvent.on(tr_, 'click', go);
          L.DomEvent.on(tr_, 'keydown', go);
        });
        if (rows.length > (rk.shown || 10)) {
          var more = el('a', 'riskmap-ranking-more', body);
          more.href = '#';
          more.textContent = (state.all ? t(UI.top) : t(UI.all))
            .replace('{n}', String(state.all ? (rk.shown || 10) : rows.length));
          L.DomEvent.on(more, 'click', function (ev) {
            L.DomEvent.preventDefault(ev);
            state.all = !state.all;
            later(function () { ctl.render(); });
          });
        }
      }
    });
    var c = new Ctl();
    c.addTo(map);
    app.controls.push(c);
    app.fireRanking = {control: c, show: function (id) { return showCompound(app, fc.compoundLayer || 'compounds', id); }};
  }

  // Layers drawn only within a zoom range (`zoomLayers`: id -> {min, max}) but kept on the
  // findings' canvas (clickable there): hidden by style, so the layer list still shows them on.
  function zoomLayers(app, spec) {
    var map = app.map, ids = Object.keys(spec || {});
    if (!ids.length) { return; }
    function update() {
      var z = map.getZoom();
      ids.forEach(function (id) {
        var entry = app.layers[id], r = spec[id];
        if (!entry) { return; }
        var on = (r.max === undefined || z < r.max) && (r.min === undefined || z >= r.min);
        if (entry.zoomOn === on) { return; }
        entry.zoomOn = on;
        entry.layer.eachLayer(function (l) {
          if (on) { entry.layer.resetStyle(l); } else {
            l.setStyle({opacity: 0, fillOpacity: 0});
            l.options.interactive = false;
          }
        });
        map.getContainer().setAttribute('data-zoom-' + id, on ? 'shown' : 'hidden');
      });
    }
    map.on('zoomend', update);
    update();
  }

  function zoomPanes(app, panes) {
    var map = app.map, names = Object.keys(panes || {});
    if (!names.length) { return; }
    names.forEach(function (n) {  // shading over the base map, under the fire layers, never clicked
      var p = map.getPane('riskmap-' + n);
      if (p) { p.style.zIndex = 380; p.style.pointerEvents = 'none'; }
    });
    function update() {
      var z = map.getZoom(), shown = [];
      names.forEach(function (n) {
        var p = map.getPane('riskmap-' + n), r = panes[n];
        if (!p) { return; }
        var on = (r.max === undefined || z < r.max) && (r.min === undefined || z >= r.min);
        p.style.display = on ? '' : 'none';
        if (on) { shown.push(n); }
      });
      map.getContainer().setAttribute('data-fire-panes', shown.join(' '));
    }
    map.on('zoomend', update);
    update();
  }

  function addStyle() {
    var d = global.document;
    if (d.getElementById('riskmap-fire-css')) { return; }
    var s = d.createElement('style');
    s.id = 'riskmap-fire-css';
    s.textContent = [
      '.riskmap-fire-ranking { max-width: 420px; max-height: 42vh; overflow-y: auto; }',
      '.riskmap-fire-ranking.collapsed .riskmap-ranking-body { display: none; }',
      '.riskmap-ranking-toggle, .riskmap-ranking-more { font-weight: normal; font-size: 11px; color: #0645ad; }',
      '.riskmap-ranking-row { cursor: pointer; }',
      '.riskmap-ranking-row:hover td, .riskmap-ranking-row:focus td { background: #fff3c4; }',
      '.riskmap-ranking-row td { vertical-align: top; border-top: 1px solid #eee; }',
      '.riskmap-ranking-why { color: #7f0000; font-size: 11px; }',
      '.riskmap-ranking-ok .riskmap-ranking-why { color: #1a9641; }',
      '.riskmap-ranking-name { white-space: nowrap; }',
      '@media print { .riskmap-ranking-toggle, .riskmap-ranking-more { display: none; } }'
    ].join('\n');
    d.head.appendChild(s);
  }

  RM.fire = {showCompound: showCompound};
  var init0 = RM.init;
  RM.init = function (map, cfg) {
    var app = init0(map, cfg);
    if (cfg && cfg.fire) {
      addStyle();
      if (cfg.fire.ranking) { addRanking(app, cfg.fire); }
      zoomPanes(app, cfg.fire.zoomPanes);
      zoomLayers(app, cfg.fire.zoomLayers);
    }
    return app;
  };
})(window);
