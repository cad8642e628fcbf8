package eval

// reportTemplateText is report.html: html/template escapes every name and message; plots
// come in as inline SVG. No scripts, no external resources.
const reportTemplateText = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medseq evaluation: {{range $i, $m := .HeadModels}}{{if $i}} vs {{end}}{{$m}}{{end}}</title>
<style>
:root { --fg:#1d232a; --muted:#5b6570; --line:#d5dbe1; --bg:#ffffff; --band:#f4f6f8; --warn:#8a4b00; --warnbg:#fff4e0; --bad:#a4161a; }
* { box-sizing: border-box; }
body { font-family: "Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif; color: var(--fg); background: var(--bg); margin: 0; line-height: 1.45; font-size: 15px; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p, li { max-width: 980px; }
.meta { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
thead th { background: var(--band); }
td.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
table.headline td:first-child { font-weight: 600; white-space: nowrap; }
table.headline td { font-size: 15px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 18px 26px; }
figure { margin: 0; max-width: 640px; }
figure svg { width: 100%; height: auto; display: block; }
figure svg text { font-family: "Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif !important; }
figcaption { color: var(--muted); font-size: 13px; text-align: center; margin-top: 2px; }
.warn { background: var(--warnbg); color: var(--warn); border-left: 4px solid #e0a030; padding: 8px 12px; margin: 10px 0; }
.warn ul { margin: 4px 0; padding-left: 20px; }
.flag { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line); padding-top: 10px; }
code { font-size: 13px; background: var(--band); padding: 0 3px; border-radius: 3px; }
</style>
</head>
<body>
<main>
<h1>Model evaluation report</h1>
<p class="meta">Split <b>{{.R.Split}}</b> · generated {{.R.Created}} · {{if .R.Bootstrap}}95% CIs by percentile bootstrap over subjects ({{.R.Bootstrap}} resamples, seed {{.R.Seed}}){{else}}no bootstrap intervals{{end}}</p>

<table>
<thead><tr><th>model</th><th>kind</th><th>reads</th><th>trained on</th><th>folder</th><th>run</th><th>created</th></tr></thead>
<tbody>
{{range .Models}}<tr><td><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</td><td>{{.Kind}}</td><td>{{.Inputs}}</td><td>{{if .TrainedOn}}{{.TrainedOn}}{{else}}—{{end}}</td><td><code>{{.Dir}}</code></td><td><code>{{.RunID}}</code></td><td>{{.Created}}</td></tr>
{{end}}</tbody>
</table>

<h2 id="headline">Headline</h2>
<p>All numbers on the <b>{{.R.Split}}</b> split, every prediction weighted equally (subject-weighted numbers are in <code>metrics.json</code>). Threshold metrics use {{.ThresholdDoc}}. Log loss, Brier and ECE are shown for the raw scores and after each model's <code>calibration.json</code> (fitted on {{.R.TuningSplit}}) is applied.</p>
<table class="headline">
<thead><tr><th>metric</th>{{range .HeadModels}}<th>{{.}}</th>{{end}}{{if .Oracle}}<th>synth oracle</th>{{end}}</tr></thead>
<tbody>
{{range .Headline}}<tr><td>{{.Metric}}</td>{{range .Cells}}<td class="num">{{.}}</td>{{end}}{{if $.Oracle}}<td class="num">{{.Oracle}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{if .Oracle}}<p>Synthetic-data oracle AUROC <b>{{.Oracle}}</b>{{if .OracleNote}} ({{.OracleNote}}){{end}}: the true risk the generator used, scored on the same labels; no model can do better than this on this cohort.</p>{{end}}

<h3>Operating points</h3>
<p>The deployed point is the one above. The others are what the same model would give at other thresholds, each chosen on its calibrated {{.R.TuningSplit}} predictions and evaluated on {{.R.Split}}: for choosing a different point at training time (<code>--threshold</code>), not deployed.</p>
<table>
<thead><tr><th>model</th><th>rule</th><th>calibrated threshold</th><th>chosen on</th><th>sensitivity</th><th>specificity</th><th>PPV</th><th>F1</th></tr></thead>
<tbody>
{{range .Models}}{{$m := .}}<tr><td>{{.Name}}</td><td colspan="3"><b>deployed</b>: {{.Threshold}}</td><td colspan="4">see the headline</td></tr>
{{range .Alternatives}}<tr><td>{{$m.Name}}</td><td>{{.Rule}} (alternative)</td><td class="num">{{.Threshold}}</td><td>{{.ChosenOn}}</td><td class="num">{{.Sens}}</td><td class="num">{{.Spec}}</td><td class="num">{{.PPV}}</td><td class="num">{{.F1}}</td></tr>
{{end}}{{end}}</tbody>
</table>

{{if .Pairs}}<h2 id="delong">Model comparison (DeLong's test)</h2>
<p>Paired DeLong test of the AUROC difference (first minus second) on the same rows; the interval is the difference ± 1.96 standard errors.</p>
<table>
<thead><tr><th>first</th><th>second</th><th>rows</th><th>AUROC first</th><th>AUROC second</th><th>difference</th><th>95% CI</th><th>z</th><th>p</th></tr></thead>
<tbody>
{{range .Pairs}}{{if .Error}}<tr><td>{{.A}}</td><td>{{.B}}</td><td colspan="7">not compared: {{.Error}}</td></tr>
{{else}}<tr><td>{{.A}}</td><td>{{.B}}</td><td class="num">{{.N}}</td><td class="num">{{.AUROCA}}</td><td class="num">{{.AUROCB}}</td><td class="num">{{.Diff}}</td><td class="num">{{.CI}}</td><td class="num">{{.Z}}</td><td class="num">{{.P}}</td></tr>
{{end}}{{end}}</tbody>
</table>{{end}}

<h2 id="discrimination">Discrimination</h2>
<div class="figs">
{{range .Discrim}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>

<h2 id="calibration">Calibration</h2>
<p>Reliability over {{.R.Bins}} equal-width bins of the predicted probability (empty bins left out). ECE is the count-weighted mean gap between predicted and observed; a calibration slope below 1 means over-confident scores.</p>
<div class="figs">
{{range .Reliability}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
<table>
<thead><tr><th rowspan="2">model</th><th colspan="4">raw scores</th><th colspan="5">calibrated</th></tr>
<tr><th>ECE</th><th>ECE (quantile bins)</th><th>slope</th><th>intercept</th><th>method</th><th>ECE</th><th>ECE (quantile bins)</th><th>slope</th><th>intercept</th></tr></thead>
<tbody>
{{range .Models}}<tr><td>{{.Name}}</td><td class="num">{{.ECE}}</td><td class="num">{{.ECEQ}}</td><td class="num">{{.Slope}}</td><td class="num">{{.Intercept}}</td><td>{{.CalMethod}}</td><td class="num">{{.ECECal}}</td><td class="num">{{.ECEQCal}}</td><td class="num">{{.SlopeCal}}</td><td class="num">{{.ICal}}</td></tr>
{{end}}</tbody>
</table>

<h2 id="distributions">Score and age distributions</h2>
<div class="figs">
{{range .Models}}<figure>{{.ScoreHist.SVG}}<figcaption>{{.ScoreHist.Caption}}</figcaption></figure>
{{end}}{{with .Ages}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>

{{with .Cohort}}<h2 id="cohort">Cohort checks</h2>
<p>Cohort <code>{{.Dir}}</code>, all splits. Age at prediction per class; a large Kolmogorov–Smirnov distance means age alone separates the classes (a sampling bias, not a clinical signal).</p>
<table>
<thead><tr><th>class</th><th>labels</th><th>mean age</th><th>min</th><th>25%</th><th>median</th><th>75%</th><th>max</th></tr></thead>
<tbody>
<tr><td>positive</td><td class="num">{{.Pos.N}}</td><td class="num">{{.Pos.Mean}}</td><td class="num">{{.Pos.Min}}</td><td class="num">{{.Pos.P25}}</td><td class="num">{{.Pos.Median}}</td><td class="num">{{.Pos.P75}}</td><td class="num">{{.Pos.Max}}</td></tr>
<tr><td>negative</td><td class="num">{{.Neg.N}}</td><td class="num">{{.Neg.Mean}}</td><td class="num">{{.Neg.Min}}</td><td class="num">{{.Neg.P25}}</td><td class="num">{{.Neg.Median}}</td><td class="num">{{.Neg.P75}}</td><td class="num">{{.Neg.Max}}</td></tr>
</tbody>
</table>
<p>Age KS distance between classes: <b>{{.AgeKS}}</b>.</p>
{{if .Warnings}}<div class="warn"><ul>{{range .Warnings}}<li>{{.}}</li>{{end}}</ul></div>{{else}}<p class="note">No cohort warnings.</p>{{end}}
<div class="figs"><figure>{{.AgeFigure.SVG}}<figcaption>{{.AgeFigure.Caption}}</figcaption></figure></div>
{{end}}

<h2 id="segments">Segments</h2>
<p>Every model at its headline threshold, per sex and age band. Segments with fewer than the minimum positives or negatives show counts only.</p>
{{range .Models}}<h3><span class="swatch" style="background: {{.Color}}"></span>{{.Name}}</h3>
<table>
<thead><tr><th>column</th><th>segment</th><th>rows</th><th>subjects</th><th>pos</th><th>neg</th><th>AUROC (95% CI)</th><th>AUPRC (95% CI)</th><th>sensitivity</th><th>specificity</th><th>Brier</th></tr></thead>
<tbody>
{{range .Segments}}<tr><td>{{.Column}}</td><td>{{.Value}}</td><td class="num">{{.N}}</td><td class="num">{{.Subjects}}</td><td class="num">{{.Pos}}</td><td class="num">{{.Neg}}</td>{{if .Note}}<td colspan="5" class="note">{{.Note}}</td>{{else}}<td class="num">{{.AUROC}}</td><td class="num">{{.AUPRC}}</td><td class="num">{{.Sens}}</td><td class="num">{{.Spec}}</td><td class="num">{{.Brier}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}
{{range .Pairs}}{{if not .Error}}<h3>{{.A}} vs {{.B}} per segment</h3>
<table>
<thead><tr><th>column</th><th>segment</th><th>rows</th><th>pos</th><th>neg</th><th>AUROC {{.A}}</th><th>AUROC {{.B}}</th><th>difference</th><th>p</th><th>ordering</th></tr></thead>
<tbody>
{{range .Segments}}<tr><td>{{.Column}}</td><td>{{.Value}}</td><td class="num">{{.N}}</td><td class="num">{{.Pos}}</td><td class="num">{{.Neg}}</td>{{if .Note}}<td colspan="5" class="note">{{.Note}}</td>{{else}}<td class="num">{{.AUROCA}}</td><td class="num">{{.AUROCB}}</td><td class="num">{{.Diff}}</td><td class="num">{{.P}}</td><td>{{if .Reversed}}<span class="flag">reversed vs overall</span>{{else}}as overall{{end}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<table>
<thead><tr><th>column</th><th>segments compared</th><th>agree with overall</th><th>disagree</th><th>Simpson's paradox</th><th>reversed segments</th></tr></thead>
<tbody>
{{range .Simpson}}<tr><td>{{.Column}}</td><td class="num">{{.Evaluable}}</td><td class="num">{{.Agree}}</td><td class="num">{{.Disagree}}</td><td>{{if .Paradox}}<span class="flag">yes: the overall ordering disagrees with most segments</span>{{else}}no{{end}}</td><td>{{.Reversed}}</td></tr>
{{end}}</tbody>
</table>
{{end}}{{end}}

<h2 id="training">Training curves</h2>
<div class="figs">
{{range .Models}}{{if .Training}}<figure>{{.Training.SVG}}<figcaption>{{.Training.Caption}}</figcaption></figure>
{{else}}<p class="note">{{.Name}}: {{.TrainingNote}}.</p>
{{end}}{{end}}</div>

{{range .Models}}{{if .TopFeatures}}<h2>Top features: {{.Name}}</h2>
<p>XGBoost's features by total gain (<code>xgboost/top_features.json</code>); share is of the listed features' gain.</p>
<table>
<thead><tr><th>#</th><th>feature</th><th>description</th><th>gain</th><th>share</th></tr></thead>
<tbody>
{{range .TopFeatures}}<tr><td class="num">{{.Rank}}</td><td><code>{{.Feature}}</code></td><td>{{.Description}}</td><td class="num">{{.Gain}}</td><td class="num">{{.Share}}</td></tr>
{{end}}</tbody>
</table>
{{end}}{{end}}

{{if .Warnings}}<h2 id="warnings">Warnings</h2>
<div class="warn"><ul>{{range .Warnings}}<li>{{.}}</li>{{end}}</ul></div>{{end}}

<footer>
<p>— marks an undefined value: a ratio whose numerator and denominator are both zero (for example PPV with no positive predictions), a calibration fit that does not converge, an interval for which too few bootstrap resamples defined the metric, or a missing input. ∞ is a ratio with a zero denominator (LR+ at specificity 1). No undefined value is ever shown as a number.</p>
<p>Made by <code>medseq eval report</code> in {{printf "%.1f" .R.ElapsedS}} s. Self-contained: no scripts, fonts or images are fetched. Every number shown is in <code>metrics.json</code> beside this file.</p>
</footer>
</main>
</body>
</html>
`
