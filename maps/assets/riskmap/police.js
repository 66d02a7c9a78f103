/* police.js — the police map's hazmat route request form (MIT, part of riskmap).
 *
 * Loaded after riskmap.js on the police map (maps/police.py). RiskMap.init is wrapped: when
 * the config carries `police`, this file adds
 *   - the route form: origin/destination picked on the map (a click on a feature while
 *     picking sets the point and opens no popup), departure, permits (the permit zones the
 *     vehicle holds permits for), vehicle weight (t) and height (m), alternatives, objective;
 *     posted to POST /routes as {origin, destination, depart_at, permits, vehicle:{weight_t,
 *     height_m}, alternatives, objective};
 *   - the answer drawn in the form's own colours (never the published routes' green), the
 *     best route solid over a white casing, alternatives dashed; only the newest answer is
 *     kept (an older reply arriving late is dropped; the EN/中 switch and picking new points
 *     re-render the text and never redraw or re-fit an older route);
 *   - every reason and refusal in the UI language (API messages in English are translated
 *     by pattern, zone words from the zones on the map);
 *   - zone tooltips and labels with name, rule and hours.
 * No network access except POST to the configured route URL.
 */
(function (global) {
  'use strict';
  var L = global.L, RM = global.RiskMap;
  if (!L || !RM) { return; }

  var U = RM.util;
  var esc = U.esc, own = U.own, tr = U.tr, fmtNum = U.fmtNum, fmtLen = U.fmtLen, el = U.el,
      shiftGeojson = U.shiftGeojson, fill = U.fill;

  var UI = {
    routeTitle: {zh: '危化品车辆路线申请', en: 'Hazmat route request'},
    origin: {zh: '起点', en: 'Origin'},
    destination: {zh: '终点', en: 'Destination'},
    pick: {zh: '在地图上点击', en: 'click on the map'},
    picking: {zh: '请在地图上点击选择{what}', en: 'click on the map to set the {what}'},
    departAt: {zh: '出发时间', en: 'Departure'},
    permits: {zh: '持有通行证的区域', en: 'Permits held for'},
    noPermitZones: {zh: '（无需通行证区域）', en: '(no permit zones)'},
    permitOther: {zh: '其他通行证区域编号', en: 'Other permit zone ids'},
    weight: {zh: '车辆总质量 (t)', en: 'Vehicle weight (t)'},
    height: {zh: '车辆高度 (m)', en: 'Vehicle height (m)'},
    alternatives: {zh: '备选路线数', en: 'Alternatives'},
    objective: {zh: '优化目标', en: 'Objective'},
    time: {zh: '时间', en: 'time'},
    distance: {zh: '距离', en: 'distance'},
    risk: {zh: '风险', en: 'risk'},
    route: {zh: '规划路线', en: 'Find route'},
    clear: {zh: '清除', en: 'Clear'},
    loading: {zh: '规划中…', en: 'routing…'},
    needEnds: {zh: '请先在地图上选择起点和终点', en: 'pick the origin and the destination on the map first'},
    badWeight: {zh: '车辆总质量应为大于 0 且不超过 200 的数值（吨）', en: 'vehicle weight must be a number above 0 and at most 200 (t)'},
    badHeight: {zh: '车辆高度应为大于 0 且不超过 10 的数值（米）', en: 'vehicle height must be a number above 0 and at most 10 (m)'},
    badAlt: {zh: '备选路线数应为 1 至 5', en: 'alternatives must be 1 to 5'},
    noRoute: {zh: '无可行路线', en: 'No route'},
    refused: {zh: '拒绝通行道路', en: 'Refused roads'},
    zones: {zh: '经过区域', en: 'Zones passed'},
    offAtDeparture: {zh: '出发时未生效', en: 'off at departure'},
    riskScore: {zh: '风险值', en: 'Risk score'},
    minutes: {zh: '分钟', en: 'min'},
    best: {zh: '推荐', en: 'best'},
    alt: {zh: '备选', en: 'alternative'},
    applied: {zh: '按 {at} 的限行时段规划', en: 'zones applied at {at}'},
    allDay: {zh: '全天', en: 'all day'},
    hours: {zh: '时段', en: 'hours'},
    collapse: {zh: '收起', en: 'hide'},
    expand: {zh: '展开', en: 'show'}
  };
  var RULES = {
    forbidden: {zh: '禁行区', en: 'forbidden zone'},
    permit: {zh: '需通行证区域', en: 'permit zone'},
    avoid: {zh: '避让区域', en: 'zone to avoid'}
  };
  var REASONS = {
    zone_forbidden: RULES.forbidden,
    zone_permit: RULES.permit,
    zone_avoid: RULES.avoid,
    hazmat_no: {zh: '禁止危化品车辆', en: 'hazmat=no'},
    hazmat_destination: {zh: '仅限目的地车辆', en: 'destination traffic only'},
    weight: {zh: '限重', en: 'weight limit'},
    height: {zh: '限高', en: 'height limit'}
  };
  // New routes: blue, magenta, teal, brown, black — none of them the published green
  // (#1a9641), the draft grey, the zones' reds/oranges/yellow or the refused red.
  var ROUTE_COLORS = ['#0050c8', '#c51b7d', '#01857a', '#8c510a', '#222222'];
  var REFUSED_COLOR = '#d7191c';

  // ------------------------------------------------------------ zone words and API messages
  function hoursText(h, lang) {
    if (h === null || h === undefined || h === '' || h === '00:00-24:00') { return tr(UI.allDay, lang); }
    return String(h);
  }
  // "forbidden zone Z-01 (岩马水库…) 00:00-24:00" → "禁行区 Z-01 岩马水库… 全天"
  var ZONE_WORDS = /^(forbidden|permit|avoid) zone (\S+)(?: \((.*)\))? (\S+?)( \(off at departure\))?$/;
  function paren(s, lang) { return lang === 'en' ? ' (' + s + ')' : '（' + s + '）'; }
  function zoneWords(s, lang) {
    var m = ZONE_WORDS.exec(String(s).trim());
    if (!m) { return null; }
    return tr(RULES[m[1]], lang) + ' ' + m[2] + (m[3] ? ' ' + m[3] : '') + ' ' + hoursText(m[4], lang) +
      (m[5] ? paren(tr(UI.offAtDeparture, lang), lang) : '');
  }
  function zoneList(s, lang) {
    var parts = String(s).split('; ');
    var out = parts.map(function (p) { return zoneWords(p, lang); });
    return out.indexOf(null) >= 0 ? null : out.join('；');
  }
  // one reason message of geo.routing (_edge_reasons)
  function reasonMessage(s, lang) {
    var t = String(s).trim(), m;
    if (t === 'road signed hazmat=no') { return lang === 'en' ? t : '道路标志禁止危化品车辆通行'; }
    if (/^road signed hazmat=destination/.test(t)) {
      return lang === 'en' ? t : '道路仅限目的地危化品车辆（只能在起点或终点使用）';
    }
    if ((m = /^weight limit (\S+) t$/.exec(t))) { return lang === 'en' ? t : '限重 ' + m[1] + ' t'; }
    if ((m = /^height limit (\S+) m$/.exec(t))) { return lang === 'en' ? t : '限高 ' + m[1] + ' m'; }
    if ((m = /^in (.+)$/.exec(t))) {
      var z = zoneWords(m[1], lang);
      if (z) { return (lang === 'en' ? 'in ' : '位于') + z; }
    }
    return null;
  }
  function reasonList(s, lang) {
    var out = String(s).split('; ').map(function (p) { return reasonMessage(p, lang); });
    return out.indexOf(null) >= 0 ? null : out.join(lang === 'en' ? '; ' : '；');
  }
  var WHAT = {origin: {zh: '起点', en: 'origin'}, destination: {zh: '终点', en: 'destination'}};
  function at(m, lang) { return m ? (lang === 'en' ? ' at ' + m : '（' + m + '）') : ''; }
  // The routing API's refusals (422 / 400 descriptions, English) in the UI language.
  function apiMessage(text, status, lang) {
    var t = String(text === undefined || text === null ? '' : text).trim(), m, x;
    if (lang === 'en') { return t || ('HTTP ' + status); }
    if ((m = /^(origin|destination) lies in (.+)$/.exec(t)) && (x = zoneList(m[2], lang))) {
      return tr(WHAT[m[1]], lang) + '位于' + x + '内';
    }
    if ((m = /^no route(?: at (\d\d:\d\d))?: origin and destination are not connected/.exec(t))) {
      return '无路线' + at(m[1], lang) + '：起点与终点在路网上不连通（请检查单行道和未连通的道路端点）';
    }
    if ((m = /^no permitted route(?: at (\d\d:\d\d))?$/.exec(t))) {
      return '无可通行路线' + at(m[1], lang);
    }
    if ((m = /^no permitted route(?: at (\d\d:\d\d))?; every way is blocked — the direct way is refused by (.+)$/.exec(t))) {
      var items = m[2].split('; ').map(function (p) {
        var r = /^road (\S+) \((.+)\)$/.exec(p);
        if (r) { var why = reasonList(r[2], lang); return why ? '道路 ' + r[1] + '（' + why + '）' : null; }
        return zoneWords(p, lang);
      });
      if (items.indexOf(null) < 0) {
        return '无可通行路线' + at(m[1], lang) + '：所有路径均被阻断，直达路线被以下限制拒绝：' + items.join('；');
      }
    }
    if ((m = /^(origin|destination) is more than (\S+) m from the nearest permitted road(?:; the nearest road (\S+) is (\d+) m away(?: but refused: (.+))?)?; choose a point nearer a permitted road$/.exec(t))) {
      var s = tr(WHAT[m[1]], lang) + '距最近的可通行道路超过 ' + m[2] + ' m';
      if (m[3]) {
        s += '；最近的道路 ' + m[3] + ' 相距 ' + m[4] + ' m';
        if (m[5]) { var rs = reasonList(m[5], lang); s += '，但' + (rs ? '不可通行：' + rs : '不可通行'); }
      }
      return s + '；请选择更靠近可通行道路的点';
    }
    if ((m = /^permit for unknown zone (.+?); permit zones are: (.*)$/.exec(t))) {
      return '通行证区域编号不存在：' + m[1] + '；可用的需通行证区域：' + (m[2] || '无');
    }
    if ((m = /^alternatives is (\S+); expected a whole number >= 1$/.exec(t))) {
      return '备选路线数为 ' + m[1] + '，应为不小于 1 的整数';
    }
    if (/^(origin|destination)[ (].*not lon\/lat|expected \(lon, lat\)/.test(t)) {
      return '起点或终点坐标无效（应为经度、纬度）';
    }
    if (status === 401) { return '未登录或登录已过期，请重新登录'; }
    if (status === 403) { return '当前角色无权规划危化品车辆路线'; }
    if (status === 429 || status === 503) { return '服务繁忙，请稍后重试'; }
    if (status === 0) { return '无法连接服务器：' + t; }
    // a message this page does not know: say so in Chinese, keep the original for the record
    return '路线请求被拒绝（HTTP ' + status + '），服务返回：' + t;
  }

  // ------------------------------------------------------------ POST /routes answer
  function splitList(v) {
    if (v === null || v === undefined || v === '') { return []; }
    if (Array.isArray(v)) { return v; }
    return String(v).split(';').map(function (x) { return x.trim(); }).filter(function (x) { return x !== ''; });
  }
  function routeParts(body) {
    var out = {routes: [], refused: [], ends: []};
    var feats = body && body.type === 'FeatureCollection' ? (body.features || []) : [];
    feats.forEach(function (f) {
      var kind = (f.properties || {}).feature;
      if (kind === 'refused') { out.refused.push(f); }
      else if (kind === 'origin' || kind === 'destination') { out.ends.push(f); }
      else if (!kind || kind === 'route') { out.routes.push(f); }
    });
    out.routes.sort(function (x, y) { return ((x.properties || {}).rank || 0) - ((y.properties || {}).rank || 0); });
    return out;
  }
  function refusedText(p, lang, zones) {
    var why = p.reason ? tr(own(REASONS, p.reason) || String(p.reason), lang) : '';
    if (p.reason === 'weight' || p.reason === 'height') {
      var lim = /(\S+) (t|m)$/.exec(String(p.message || ''));
      if (lim) { why += ' ' + lim[1] + ' ' + lim[2]; }
    }
    var z = p.zone_id ? own(zones, String(p.zone_id)) : null;
    var zone = p.zone_id ? ' ' + p.zone_id + (p.zone_name || (z && z.name) ? ' ' + (p.zone_name || z.name) : '') : '';
    var h = p.hours !== undefined && p.hours !== null ? p.hours : (z ? z.hours || '00:00-24:00' : '');
    var hours = p.zone_id && h ? ' ' + h : '';
    return why + zone + hours;
  }
  // Refused stretches grouped by road name, reason and zone: "华山路 (2), 300 m: 禁行区 Z-01 … 全天"
  function refusedGroups(refused, lang, zones) {
    var groups = [], byKey = Object.create(null);
    refused.forEach(function (f) {
      var p = f.properties || {};
      var road = p.road_name || p.road_id || '';
      var key = [road, p.reason, p.zone_id].join('|');
      if (!own(byKey, key)) {
        byKey[key] = {road: road, why: refusedText(p, lang, zones), ids: [], m: 0};
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
  // the zones a route passes: ids with names from the map, hours, "off at departure"
  function routeZones(p, lang, zones) {
    var ids = splitList(p.zone_ids);
    var words = p.zones ? String(p.zones).split('; ') : [];
    if (!ids.length) {
      return words.filter(function (w) { return w.trim() !== ''; }).map(function (w) {
        return zoneWords(w, lang) || w;
      });
    }
    return ids.map(function (id, i) {
      var z = own(zones, id) || {};
      var off = words[i] && /\(off at departure\)$/.test(words[i]);
      var m = words[i] ? ZONE_WORDS.exec(words[i]) : null;
      var rule = z.rule || (m ? m[1] : null);
      return (rule ? tr(RULES[rule], lang) + ' ' : '') + id + (z.name ? ' ' + z.name : '') +
        (off ? paren(tr(UI.offAtDeparture, lang), lang) : '');
    });
  }

  // ------------------------------------------------------------ the form
  // A control re-rendered inside its own click handler would leave the clicked element
  // detached, and Leaflet would then take the click for a click on the map (its "clicked a
  // control" test walks up from the target): handlers that re-render run just after.
  function later(fn) { global.setTimeout(fn, 0); }
  function install(app, pc) {
    function narrow() {  // a phone: the shared layout's test when riskmap.js has one
      return app._phone ? app._phone() : (global.innerWidth !== undefined && global.innerWidth < 640);
    }
    var map = app.map, t = function (l) { return app.t(l); };
    var zones = Object.create(null);
    (pc.zones || []).forEach(function (z) { zones[String(z.id)] = z; });
    var st = {pick: null, origin: null, destination: null, markers: {}, seq: 0, result: null,
      routes: L.featureGroup().addTo(map),
      form: {depart: pc.departAt || '', permits: [], permitOther: '', weight: '', height: '',
        k: pc.alternatives || 3, objective: 'time', error: null}};
    app.routeState = st;
    // Everything this form draws goes on the findings' canvas (riskmap.js routes events between
    // its canvases; a canvas of our own on top would take every click away from them).
    function topRenderer() { return app._renderer ? app._renderer({group: 'findings'}) : undefined; }

    var Ctl = L.Control.extend({
      options: {position: 'topleft'},
      onAdd: function () {
        var div = el('div', 'riskmap-route riskmap-police-route riskmap-box');
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        this.div = div;
        this.collapsed = narrow();
        this.render();
        return div;
      },
      render: function () {
        var d = this.div, ctl = this, f = st.form;
        d.innerHTML = '';
        var head = el('div', 'riskmap-box-title riskmap-route-head', d);
        head.textContent = t(UI.routeTitle) + ' ';
        var tog = el('a', 'riskmap-route-toggle', head);
        tog.href = '#';
        tog.textContent = ctl.collapsed ? '▸ ' + t(UI.expand) : '▾ ' + t(UI.collapse);
        L.DomEvent.on(tog, 'click', function (ev) {
          L.DomEvent.preventDefault(ev);
          ctl.collapsed = !ctl.collapsed;
          later(function () { ctl.render(); });
        });
        L.DomUtil[ctl.collapsed ? 'addClass' : 'removeClass'](d, 'collapsed');
        if (st.pick) {  // stays in view when the form is folded away for the pick
          el('div', 'riskmap-route-hint', d).textContent = fill(t(UI.picking), {what: t(WHAT[st.pick])});
        }
        var body = el('div', 'riskmap-route-body', d);
        ['origin', 'destination'].forEach(function (k) {
          var row = el('div', 'riskmap-route-row', body);
          var b = el('button', 'riskmap-route-pick' + (st.pick === k ? ' active' : ''), row);
          b.type = 'button';
          b.name = k;
          b.textContent = t(UI[k]);
          var span = el('span', 'riskmap-route-' + k, row);
          span.textContent = ' ' + (st[k] ? st[k][0].toFixed(5) + ', ' + st[k][1].toFixed(5) :
            (st.pick === k ? fill(t(UI.picking), {what: t(WHAT[k])}) : t(UI.pick)));
          L.DomEvent.on(b, 'click', function () { app.startPick(k); });
        });
        function input(label, name, type, value, attrs, onchange) {
          var row = el('div', 'riskmap-route-row', body);
          var lab = el('label', '', row);
          lab.textContent = t(label) + ' ';
          var i = el('input', '', lab);
          i.type = type; i.name = name; i.value = value;
          Object.keys(attrs || {}).forEach(function (a) { i.setAttribute(a, attrs[a]); });
          L.DomEvent.on(i, 'change', function () { onchange(i.value); });
          return i;
        }
        input(UI.departAt, 'depart_at', 'datetime-local', f.depart, {}, function (v) { f.depart = v; });
        var pr = el('div', 'riskmap-route-row riskmap-route-permits', body);
        el('div', '', pr).textContent = t(UI.permits) + ':';
        var pz = (pc.zones || []).filter(function (z) { return z.rule === 'permit'; });
        if (!pz.length) { el('span', 'riskmap-route-note', pr).textContent = t(UI.noPermitZones); }
        pz.forEach(function (z) {
          var lab = el('label', 'riskmap-route-permit', pr);
          var cb = el('input', '', lab);
          cb.type = 'checkbox'; cb.name = 'permits'; cb.value = z.id;
          cb.checked = f.permits.indexOf(String(z.id)) >= 0;
          el('span', '', lab).textContent = ' ' + z.id + (z.name ? ' ' + z.name : '');
          L.DomEvent.on(cb, 'change', function () {
            f.permits = f.permits.filter(function (x) { return x !== String(z.id); });
            if (cb.checked) { f.permits.push(String(z.id)); }
          });
        });
        input(UI.permitOther, 'permit_other', 'text', f.permitOther, {size: 10},
          function (v) { f.permitOther = v; });
        input(UI.weight, 'weight_t', 'number', f.weight, {min: '0', max: '200', step: '0.1'},
          function (v) { f.weight = v; });
        input(UI.height, 'height_m', 'number', f.height, {min: '0', max: '10', step: '0.1'},
          function (v) { f.height = v; });
        input(UI.alternatives, 'alternatives', 'number', f.k, {min: '1', max: '5', step: '1'},
          function (v) { f.k = v; });
        var r3 = el('div', 'riskmap-route-row', body);
        var ol = el('label', '', r3);
        ol.textContent = t(UI.objective) + ' ';
        var o = el('select', '', ol);
        o.name = 'objective';
        ['time', 'distance', 'risk'].forEach(function (v) {
          var opt = el('option', '', o);
          opt.value = v;
          opt.textContent = t(UI[v]);
        });
        o.value = f.objective;
        L.DomEvent.on(o, 'change', function () { f.objective = o.value; });
        var br = el('div', 'riskmap-route-row', body);
        var go = el('button', 'riskmap-route-go', br);
        go.type = 'button';
        go.textContent = t(UI.route);
        L.DomEvent.on(go, 'click', function () { app.requestRoute(); });
        var clr = el('button', 'riskmap-route-clear', br);
        clr.type = 'button';
        clr.textContent = t(UI.clear);
        L.DomEvent.on(clr, 'click', function () { later(function () { app.clearRoute(); }); });
        this.out = el('div', 'riskmap-route-out', d);  // answers stay visible when collapsed
        app._policeRenderResult();  // text only: layers are drawn once per answer
      }
    });
    var ctl = new Ctl();
    app.routeControl = ctl;

    function endPick() {
      st.pick = null;
      map.getContainer().style.cursor = '';
      L.DomUtil.removeClass(map.getContainer(), 'riskmap-picking');
    }
    app.startPick = function (k) {
      if (app.setClickMode) {  // one owner of map clicks: starting to pick ends measuring
        app.setClickMode('route-' + k, function (e) { pickAt(k, e.latlng); },
          function () { if (st.pick === k) { endPick(); ctl.render(); } });
      }
      st.pick = k;
      map.getContainer().style.cursor = 'crosshair';
      L.DomUtil.addClass(map.getContainer(), 'riskmap-picking');
      if (narrow() && !ctl.collapsed) {  // free the map
        ctl.collapsed = true;
        st.reopen = true;
        if (ctl.div) { L.DomUtil.addClass(ctl.div, 'collapsed'); }
      }
      // the state is set now (a click on the map right after is a pick); the form is rebuilt
      // just after this click, so the pressed button stays in the page while it is handled
      later(function () { ctl.render(); });
    };
    function pickAt(k, latlng) {
      var lon = latlng.lng, lat = latlng.lat;
      if (app.gcj) { var w = RM.fromGcj(lon, lat); lon = w[0]; lat = w[1]; }
      endPick();
      if (app.clearClickMode) { app.clearClickMode('route-' + k); }
      if (st.reopen) { ctl.collapsed = false; st.reopen = false; }
      app.setRouteEnd(k, lon, lat, latlng);
      map.closePopup();
      ctl.render();
    }
    app.setRouteEnd = function (k, lon, lat, latlng) {
      st[k] = [lon, lat];
      if (st.markers[k]) { map.removeLayer(st.markers[k]); }
      var ll = latlng || L.latLng(lat, lon);
      if (!latlng && app.gcj) { var g = RM.toGcj(lon, lat); ll = L.latLng(g[1], g[0]); }
      st.markers[k] = L.circleMarker(ll, {radius: 7, color: '#000', weight: 2, interactive: false,
        fillColor: k === 'origin' ? '#ffffff' : '#000000', fillOpacity: 1,
        renderer: topRenderer()}).addTo(map);
    };
    app.setRouteEnds = function (origin, destination) {  // for tests and deep links
      if (origin) { app.setRouteEnd('origin', origin[0], origin[1]); }
      if (destination) { app.setRouteEnd('destination', destination[0], destination[1]); }
      ctl.render();
    };
    // While picking, a click anywhere on the map (on a feature too) sets the point: taken in
    // the capture phase on the map's panes, before any layer sees it, so no popup opens.
    function onPickClick(ev) {
      if (!st.pick) { return; }
      var cc = map._controlContainer, pp = map.getPane('popupPane');
      if ((cc && cc.contains(ev.target)) || (pp && pp.contains(ev.target))) { return; }
      if (map.dragging && map.dragging.moved()) { return; }  // the end of a pan, not a pick
      ev.stopPropagation();
      ev.preventDefault();
      pickAt(st.pick, map.mouseEventToLatLng(ev));
    }
    map.getContainer().addEventListener('click', onPickClick, true);

    app.clearRoute = function () {
      st.seq += 1;  // drop any answer still on its way
      st.result = null;
      st.routes.clearLayers();
      ['origin', 'destination'].forEach(function (k) {
        st[k] = null;
        if (st.markers[k]) { map.removeLayer(st.markers[k]); st.markers[k] = null; }
      });
      map.getContainer().setAttribute('data-routes', '0');
      ctl.render();
    };
    function syncForm() {  // the inputs as they are now (typed values without a change event)
      var d = ctl.div, f = st.form;
      if (!d) { return; }
      function val(n) { var i = d.querySelector('[name=' + n + ']'); return i ? i.value : undefined; }
      var v;
      if ((v = val('depart_at')) !== undefined) { f.depart = v; }
      if ((v = val('permit_other')) !== undefined) { f.permitOther = v; }
      if ((v = val('weight_t')) !== undefined) { f.weight = v; }
      if ((v = val('height_m')) !== undefined) { f.height = v; }
      if ((v = val('alternatives')) !== undefined) { f.k = v; }
      if ((v = val('objective')) !== undefined) { f.objective = v; }
      var boxes = d.querySelectorAll('input[name=permits]');
      if (boxes.length) {
        f.permits = [];
        Array.prototype.forEach.call(boxes, function (b) { if (b.checked) { f.permits.push(b.value); } });
      }
    }
    app.routeBody = function () {  // the request the form would send now
      syncForm();
      return buildBody();
    };
    function buildBody() {
      var f = st.form;
      var body = {origin: st.origin, destination: st.destination,
        alternatives: Math.round(+f.k || 3), objective: f.objective || 'time'};
      if (f.depart) { body.depart_at = f.depart.length === 16 ? f.depart + ':00' : f.depart; }
      var permits = f.permits.slice();
      splitList(String(f.permitOther || '').replace(/[,，、\s]+/g, ';')).forEach(function (p) {
        if (permits.indexOf(p) < 0) { permits.push(p); }
      });
      if (permits.length) { body.permits = permits; }
      var vehicle = {};
      if (String(f.weight).trim() !== '') { vehicle.weight_t = +f.weight; }
      if (String(f.height).trim() !== '') { vehicle.height_m = +f.height; }
      if (Object.keys(vehicle).length) { body.vehicle = vehicle; }
      return body;
    }
    function invalid(body) {
      if (!st.origin || !st.destination) { return UI.needEnds; }
      var v = body.vehicle || {};
      if (v.weight_t !== undefined && !(v.weight_t > 0 && v.weight_t <= 200)) { return UI.badWeight; }
      if (v.height_m !== undefined && !(v.height_m > 0 && v.height_m <= 10)) { return UI.badHeight; }
      if (!(body.alternatives >= 1 && body.alternatives <= 5)) { return UI.badAlt; }
      return null;
    }
    // Sends the form (optionally overriding fields: departAt, k, objective as before).
    app.requestRoute = function (departAt, k, objective) {
      var f = st.form;
      syncForm();
      if (typeof departAt === 'string') { f.depart = departAt; }
      if (k) { f.k = k; }
      if (objective) { f.objective = objective; }
      var body = buildBody();
      later(function () { ctl.render(); });  // the form shows the values sent
      var bad = invalid(body);
      var seq = ++st.seq;
      if (bad) {
        st.result = {ok: false, local: bad};
        app._policeRenderResult();
        return Promise.resolve(null);
      }
      st.result = {pending: true};
      app._policeRenderResult();
      return global.fetch(pc.url, {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'Accept': 'application/geo+json, application/json'},
        body: JSON.stringify(body)})
        .then(function (r) {
          return r.json().then(function (j) { return {ok: r.ok, status: r.status, body: j}; },
            function () { return {ok: false, status: r.status, body: null}; });
        })
        .catch(function (err) { return {ok: false, status: 0, body: {description: String(err)}}; })
        .then(function (res) {
          if (seq !== st.seq) { return null; }  // a newer request (or a clear) superseded it
          res.sent = body;
          st.result = res;
          app._policeDraw(res);
          if (res.ok && narrow()) { ctl.collapsed = true; }  // on a phone: show the routes
          ctl.render();
          return res;
        });
    };

    // Draws an answer once (and fits the map to it); never called on re-render.
    app._policeDraw = function (res) {
      st.routes.clearLayers();
      var c = map.getContainer();
      if (!res.ok) {
        c.setAttribute('data-routes', '0');
        c.setAttribute('data-refused', '0');
        return;
      }
      var parts = routeParts(res.body);
      function draw(geom, style, tip) {
        if (!geom) { return null; }
        var fc = {type: 'FeatureCollection', features: [{type: 'Feature',
          geometry: JSON.parse(JSON.stringify(geom)), properties: {}}]};
        style = L.extend({renderer: topRenderer()}, style);
        var ly = L.geoJSON(app.gcj ? shiftGeojson(fc) : fc, {style: style,
          pointToLayer: function (f, ll) { return L.circleMarker(ll, L.extend({radius: 5}, style)); }});
        if (tip) { ly.bindTooltip(function () { return esc(tip(app.lang)); }, {sticky: true}); }
        ly.addTo(st.routes);
        return ly;
      }
      parts.refused.forEach(function (f) {
        var p = f.properties || {};
        draw(f.geometry, {color: REFUSED_COLOR, weight: 5, opacity: 0.85, dashArray: '4 8',
          lineCap: 'butt'}, function (lang) {
          return (p.road_name || p.road_id || '') + (p.road_name && p.road_id ? ' ' + p.road_id : '') +
            ': ' + tr(UI.refused, lang) + ' — ' + refusedText(p, lang, zones);
        });
      });
      for (var i = parts.routes.length - 1; i >= 0; i--) {  // the best drawn last, on top
        var p = parts.routes[i].properties || {}, color = ROUTE_COLORS[i % ROUTE_COLORS.length];
        var tip = (function (p, i) {
          return function (lang) {
            return '#' + (p.rank || i + 1) + ' ' + tr(i === 0 ? UI.best : UI.alt, lang) +
              (typeof p.length_m === 'number' ? ' · ' + fmtLen(p.length_m) : '') +
              (typeof p.time_s === 'number' ? ' · ' + fmtNum(p.time_s / 60, 1) + ' ' + tr(UI.minutes, lang) : '');
          };
        })(p, i);
        if (i === 0) {
          draw(parts.routes[i].geometry, {color: '#ffffff', weight: 10, opacity: 0.9, interactive: false});
          draw(parts.routes[i].geometry, {color: color, weight: 6, opacity: 0.95}, tip);
        } else {
          draw(parts.routes[i].geometry, {color: color, weight: 4, opacity: 0.85, dashArray: '10 7'}, tip);
        }
      }
      parts.ends.forEach(function (f) {
        draw(f.geometry, {color: '#000', weight: 2, fillColor: '#ffffff', fillOpacity: 1});
      });
      if (st.routes.getLayers().length) { map.fitBounds(st.routes.getBounds(), {padding: [30, 30]}); }
      c.setAttribute('data-routes', String(parts.routes.length));
      c.setAttribute('data-refused', String(parts.refused.length));
      c.setAttribute('data-route-colors', parts.routes.map(function (f, i) {
        return ROUTE_COLORS[i % ROUTE_COLORS.length];
      }).join(','));
    };
    // The answer's text in the current language (on every render of the form).
    app._policeRenderResult = function () {
      var out = ctl.out, res = st.result, lang = app.lang;
      if (!out) { return; }
      out.innerHTML = '';
      if (!res) { return; }
      if (res.pending) { el('div', 'riskmap-route-loading', out).textContent = t(UI.loading); return; }
      if (res.local) { el('div', 'riskmap-route-error', out).textContent = t(res.local); return; }
      if (!res.ok) {
        var b = res.body || {}, det = b.description || b.detail || b.message;
        if (typeof det !== 'string') { det = det === undefined ? '' : JSON.stringify(det); }
        el('div', 'riskmap-route-error', out).textContent = t(UI.noRoute) + ': ' +
          apiMessage(det, res.status, lang);
        return;
      }
      var parts = routeParts(res.body);
      parts.routes.forEach(function (f, i) {
        var p = f.properties || {}, color = ROUTE_COLORS[i % ROUTE_COLORS.length];
        var box = el('div', 'riskmap-route-alt', out);
        box.setAttribute('data-rank', String(p.rank || i + 1));
        box.style.borderLeft = '5px ' + (i === 0 ? 'solid ' : 'dashed ') + color;
        var len = p.length_m, time = p.time_s, risk = p.risk_score !== undefined ? p.risk_score : p.risk;
        el('div', '', box).textContent = '#' + (p.rank || i + 1) + ' ' + t(i === 0 ? UI.best : UI.alt) + '  ' +
          (typeof len === 'number' ? fmtLen(len) : '') + ' · ' +
          (typeof time === 'number' ? fmtNum(time / 60, 1) + ' ' + t(UI.minutes) : '') +
          (typeof risk === 'number' ? ' · ' + t(UI.riskScore) + ' ' + fmtNum(risk, 0) : '');
        var zs = routeZones(p, lang, zones);
        if (zs.length) {
          el('div', 'riskmap-route-zones', box).textContent = t(UI.zones) + ': ' + zs.join(lang === 'en' ? ', ' : '、');
        }
      });
      var groups = refusedGroups(parts.refused, lang, zones);
      if (groups.length) {
        var rr = el('div', 'riskmap-route-refused', out);
        rr.textContent = t(UI.refused) + ': ';
        var ul = el('ul', '', rr);
        groups.slice(0, 8).forEach(function (g) { el('li', '', ul).textContent = g; });
        if (groups.length > 8) { el('li', '', ul).textContent = '… +' + (groups.length - 8); }
      }
      var ap = res.body && res.body.applied;
      if (ap && ap.at) {
        el('div', 'riskmap-route-applied', out).textContent = fill(t(UI.applied), {at: String(ap.at).replace('T', ' ')});
      }
    };
    ctl.addTo(map);
    app.controls.push(ctl);
  }

  // ------------------------------------------------------------ zones: tooltips and labels
  function zoneTip(p, lang) {
    var rule = own(RULES, String(p.rule));
    return [p.id, p.name, rule ? tr(rule, lang) : null,
      tr(UI.hours, lang) + ' ' + hoursText(p.hours, lang)].filter(Boolean).join(' · ');
  }
  function zoneLabels(app, pc) {
    var entry = app.layers.restricted_zones, map = app.map;
    var routes = app.layers.hazmat_routes;
    if (routes) {  // published routes: name and hours on hover
      routes.layer.eachLayer(function (l) {
        var p = (l.feature && l.feature.properties) || {};
        if (l.getTooltip()) { l.unbindTooltip(); }
        l.bindTooltip(function () {
          return esc([p.id, p.name, tr(UI.hours, app.lang) + ' ' + hoursText(p.hours, app.lang)]
            .filter(Boolean).join(' · '));
        }, {sticky: true});
      });
    }
    if (!entry) { return; }
    var labels = L.layerGroup(), items = [];
    entry.layer.eachLayer(function (l) {
      var p = (l.feature && l.feature.properties) || {};
      if (l.getTooltip()) { l.unbindTooltip(); }
      l.bindTooltip(function () { return esc(zoneTip(p, app.lang)); }, {sticky: true});
      if (!l.getBounds) { return; }
      var tip = L.tooltip({permanent: true, direction: 'center', interactive: false,
        className: 'riskmap-zone-label', opacity: 0.9});
      tip.setLatLng(l.getBounds().getCenter());
      tip.setContent(function () {
        return esc(p.id || '') + ' ' + esc(hoursText(p.hours, app.lang));
      });
      items.push({tip: tip, bounds: l.getBounds()});
    });
    // a label where its zone is drawn at least minPx wide (small zones from a higher zoom)
    var minZoom = pc.labelMinZoom || 14, minPx = pc.labelMinPx || 60;
    function update() {
      var on = map.hasLayer(entry.layer) && map.getZoom() >= minZoom - 2;
      if (on && !map.hasLayer(labels)) { labels.addTo(map); }
      if (!on && map.hasLayer(labels)) { map.removeLayer(labels); }
      var n = 0;
      items.forEach(function (it) {
        var b = it.bounds;
        var w = on ? map.latLngToContainerPoint(b.getNorthEast()).x - map.latLngToContainerPoint(b.getSouthWest()).x : 0;
        var show = on && (w >= minPx || map.getZoom() >= minZoom + 2);
        if (show && !labels.hasLayer(it.tip)) { labels.addLayer(it.tip); }
        if (!show && labels.hasLayer(it.tip)) { labels.removeLayer(it.tip); }
        if (show) { it.tip.update(); n += 1; }
      });
      map.getContainer().setAttribute('data-zone-labels', String(n));
    }
    map.on('zoomend', update);
    map.on('layeradd layerremove', function (e) { if (e.layer === entry.layer) { update(); } });
    app.controls.push({render: update});
    update();
  }

  function addStyle() {
    var d = global.document;
    if (d.getElementById('riskmap-police-css')) { return; }
    var s = d.createElement('style');
    s.id = 'riskmap-police-css';
    s.textContent = [
      '.riskmap-police-route { width: 260px; max-height: 70vh; overflow-y: auto; }',
      '.riskmap-police-route.collapsed { width: auto; }',
      '.riskmap-police-route.collapsed .riskmap-route-body { display: none; }',
      '.riskmap-route-toggle { font-weight: normal; font-size: 11px; color: #0645ad; }',
      '.riskmap-route-pick.active { background: #ffd54f; }',
      '.riskmap-route-permit { display: block; margin-left: 8px; }',
      '.riskmap-route-row input[type=number] { width: 56px; }',
      '.riskmap-route-note, .riskmap-route-applied { color: #666; font-size: 11px; }',
      '.riskmap-route-hint { color: #7a4f00; background: #fff3c4; padding: 1px 3px; }',
      '.riskmap-picking .leaflet-interactive { cursor: crosshair !important; }',
      '.riskmap-zone-label { background: rgba(255,255,255,0.8); border: 0; box-shadow: none;',
      '  padding: 0 3px; font-size: 11px; line-height: 1.2; color: #67000d; text-align: center; }',
      '.riskmap-zone-label::before { display: none; }',
      '@media print { .riskmap-police-route { display: none !important; } }'
    ].join('\n');
    d.head.appendChild(s);
  }

  RM.police = {apiMessage: apiMessage, zoneWords: zoneWords, refusedGroups: refusedGroups,
    ROUTE_COLORS: ROUTE_COLORS, install: install};
  var init0 = RM.init;
  RM.init = function (map, cfg) {
    var app = init0(map, cfg);
    if (cfg && cfg.police) {
      addStyle();
      zoneLabels(app, cfg.police);
      if (cfg.police.url) { install(app, cfg.police); }
    }
    return app;
  };
})(window);
