(function () {
  var data = JSON.parse(document.getElementById('viewer-data').textContent);
  var root = document.getElementById('viewer');
  if (!root || !data.length) { document.body.setAttribute('data-viewer', 'none'); return; }
  var $ = function (id) { return document.getElementById(id); };
  var state = {img: 0, codec: null, rate: 0};
  function fill(select, names) {
    select.innerHTML = '';
    names.forEach(function (n, i) { var o = document.createElement('option'); o.value = i; o.textContent = n; select.appendChild(o); });
  }
  function codecs() { return Object.keys(data[state.img].curves); }
  function points() { return data[state.img].curves[codecs()[state.codec]] || []; }
  function show() {
    var d = data[state.img], pts = points(), p = pts[state.rate];
    var orig = d.original || '';
    $('v-orig').src = orig; $('v-s-orig').src = orig;
    if (!p) { $('v-caption').textContent = 'No saved reconstructions for this image.'; return; }
    $('v-recon').src = p.src; $('v-s-recon').src = p.src;
    var m = Object.keys(p.metrics).filter(function (k) { return p.metrics[k] !== null; })
      .map(function (k) { return k + ' ' + p.metrics[k]; }).join(' · ');
    var text = codecs()[state.codec] + ' at ' + p.quality + ': ' + p.bpp + ' bpp' + (m ? ' · ' + m : '');
    $('v-caption').textContent = text + (d.original ? '' : ' (original not available)');
    $('v-recon-cap').textContent = text;
    $('v-rate-text').textContent = (state.rate + 1) + ' / ' + pts.length + ' (' + p.bpp + ' bpp)';
    split();
  }
  function split() {
    var v = $('v-split').value;
    $('v-s-recon').style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)';
  }
  function pickImage(i) {
    state.img = i; state.codec = 0; fill($('v-codec'), codecs()); pickCodec(0);
  }
  function pickCodec(i) {
    state.codec = i; var n = points().length;
    $('v-rate').max = Math.max(n - 1, 0); state.rate = Math.min(state.rate, Math.max(n - 1, 0)); $('v-rate').value = state.rate;
    show();
  }
  fill($('v-image'), data.map(function (d) { return d.image; }));
  $('v-image').addEventListener('change', function (e) { pickImage(+e.target.value); });
  $('v-codec').addEventListener('change', function (e) { pickCodec(+e.target.value); });
  $('v-rate').addEventListener('input', function (e) { state.rate = +e.target.value; show(); });
  $('v-split').addEventListener('input', split);
  Array.prototype.forEach.call(document.querySelectorAll('input[name=v-mode]'), function (r) {
    r.addEventListener('change', function () {
      var slider = document.querySelector('input[name=v-mode]:checked').value === 'slider';
      $('v-side').hidden = slider; $('v-slide').hidden = !slider;
    });
  });
  // A link can open the viewer in a given state: report.html#mode=slider&codec=webp&rate=2&split=30
  var want = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) { var p = kv.split('='); if (p[0]) want[p[0]] = decodeURIComponent(p[1] || ''); });
  pickImage(0);
  if (want.codec && codecs().indexOf(want.codec) >= 0) { $('v-codec').value = codecs().indexOf(want.codec); pickCodec(codecs().indexOf(want.codec)); }
  if (want.rate) { state.rate = Math.max(0, Math.min(+want.rate || 0, points().length - 1)); $('v-rate').value = state.rate; show(); }
  if (want.split) { $('v-split').value = +want.split; split(); }
  if (want.mode === 'slider') { document.querySelector('input[name=v-mode][value=slider]').click(); }
  document.body.setAttribute('data-viewer', 'ready');
})();
