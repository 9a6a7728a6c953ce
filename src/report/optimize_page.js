// The page of one `brisk optimize` record (the JSON it prints with --json), drawn by charts.js.
'use strict';
function renderOptimize(root, r) {
  const { el, table, scatter, heatmap } = BriskCharts;
  const mb = (b) => b / 1e6;
  el('h1', {}, root, `brisk optimize: ${r.model}`);
  el('p', { class: 'lede' }, root,
     `Budget ${r.budget.kind} ${r.budget.value}, objective ${r.objective}; ${r.groups.length} groups x ` +
     `${r.candidates.length} candidates (${r.candidates.join(', ')}), scored on ${r.calibration_tokens} calibration ` +
     `tokens; measured on ${r.eval_tokens} eval tokens (windows of ${r.eval_ctx}). Chosen: ${r.chosen.source}.`);

  // Every measured recipe.
  const rows = [];
  const row = (name, m, path, predicted) => rows.push([
    name,
    { value: m.ppl, json: `${path}.ppl` },
    predicted === undefined ? '' : { value: predicted.value, json: predicted.json },
    { value: mb(m.bytes), text: BriskCharts.format(mb(m.bytes), 3), json: `${path}.bytes` },
    { value: m.decode_tok_s, json: `${path}.decode_tok_s` },
  ]);
  row('base (as stored)', r.base, 'base');
  r.single_technique.forEach((s, i) =>
    row(`all ${s.name}`, s.measured, `single_technique.${i}.measured`, { value: s.predicted_ppl, json: `single_technique.${i}.predicted_ppl` }));
  r.frontier.forEach((p, i) => {
    if (p.measured) row(`frontier #${i}`, p.measured, `frontier.${i}.measured`, { value: p.predicted_ppl, json: `frontier.${i}.predicted_ppl` });
  });
  if (r.recovery) row(`recovered (${r.recovery.steps} steps${r.recovery.used ? '' : ', not used'})`, r.recovery.measured, 'recovery.measured');
  row(`chosen (${r.chosen.source})`, r.chosen.measured, 'chosen.measured', { value: r.chosen.predicted_ppl, json: 'chosen.predicted_ppl' });
  table(root, { title: 'Measured recipes', columns: ['recipe', 'ppl', 'predicted ppl', 'MB (bytes/1e6)', 'decode tok/s'], rows });
  el('p', {}, root, `Rank correlation of predicted and measured perplexity: ` +
     (r.rank_correlation === null ? 'n/a' : r.rank_correlation.toFixed(3)) + '.');

  // Frontier charts: predicted line, measured points, single techniques, the choice.
  const front = (xOf) => ({ name: 'frontier (predicted)', line: true,
                            points: r.frontier.map((p, i) => ({ x: xOf(p), y: p.predicted_ppl, json: `frontier.${i}.predicted_ppl` })) });
  const measured = (xOf) => ({ name: 'frontier (measured)', points: r.frontier.flatMap((p, i) =>
    p.measured ? [{ x: xOf(p.measured), y: p.measured.ppl, json: `frontier.${i}.measured.ppl`, label: `#${i}` }] : []) });
  const singles = (xOf) => ({ name: 'single technique', marker: 'square', labels: true, points: r.single_technique.map((s, i) =>
    ({ x: xOf(s.measured), y: s.measured.ppl, label: s.name, json: `single_technique.${i}.measured.ppl` })) });
  const base = (xOf) => ({ name: 'base', marker: 'square', points: [{ x: xOf(r.base), y: r.base.ppl, json: 'base.ppl' }] });
  const chosen = (xOf) => ({ name: 'chosen', marker: 'star', points: [{ x: xOf(r.chosen.measured), y: r.chosen.measured.ppl, json: 'chosen.measured.ppl' }] });
  const speed = (m) => m.predicted_decode_tok_s ?? m.decode_tok_s;
  const size = (m) => mb(m.predicted_bytes ?? m.bytes);
  scatter(root, { title: 'Perplexity vs decode tokens/s', x: { label: 'decode tok/s' }, y: { label: 'perplexity' },
                  series: [front(speed), measured(speed), singles(speed), base(speed), chosen(speed)] });
  scatter(root, { title: 'Perplexity vs size', x: { label: 'MB' }, y: { label: 'perplexity' },
                  series: [front(size), measured(size), singles(size), base(size), chosen(size)] });

  // Sensitivity: each group x candidate.
  heatmap(root, { title: 'Sensitivity: mean KL (nats/token) per group and candidate', rows: r.groups.map((g) => g.label),
                  cols: r.candidates, values: r.groups.map((g) => r.candidates.map((c) => g.kl[c] ?? null)),
                  json: (i, j) => `groups.${i}.kl.${r.candidates[j]}` });

  // The chosen recipe per layer.
  const kinds = [...new Set(r.groups.map((g) => g.kind))];
  const layers = [...new Set(r.groups.map((g) => g.layer))];
  const pick = (layer, kind) => r.groups.findIndex((g) => g.layer === layer && g.kind === kind);
  heatmap(root, { title: 'Chosen format per layer', rows: layers.map((l) => (l < 0 ? 'model' : `layer ${l}`)), cols: kinds, log: false,
                  values: layers.map((l) => kinds.map((k) => { const i = pick(l, k); return i < 0 ? null : r.candidates.indexOf(r.chosen.recipe[i]); })),
                  text: (i, j) => { const g = pick(layers[i], kinds[j]); return g < 0 ? '' : r.chosen.recipe[g]; } });
}
