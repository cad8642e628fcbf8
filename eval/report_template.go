package eval

import _ "embed" // the report's template and style sheet

// The report's page: report/report.html.tmpl is the page, report/report.css its style sheet, which
// the page includes inline as the template "report.css" (the report stays one self-contained
// file). html/template escapes every name and message; plots come in as inline SVG. No scripts,
// no external resources.
var (
	//go:embed report/report.html.tmpl
	reportPageText string
	//go:embed report/report.css
	reportCSSText string

	// reportTemplateText is the page with the style sheet defined as "report.css". The style
	// sheet must hold no template actions and no comments (html/template drops CSS comments).
	reportTemplateText = reportPageText + `{{define "report.css"}}` + reportCSSText + `{{end}}`
)
