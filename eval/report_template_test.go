package eval

import (
	"bytes"
	"strings"
	"testing"
)

// The style sheet goes into the page verbatim: html/template would drop a CSS comment and
// run a template action, so the file must hold neither.
func TestReportTemplateStyleSheet(t *testing.T) {
	for _, bad := range []string{"{{", "/*", "</style"} {
		if strings.Contains(reportCSSText, bad) {
			t.Errorf("report/report.css holds %q", bad)
		}
	}
	var b bytes.Buffer
	if err := reportTemplate.ExecuteTemplate(&b, "report.css", nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != reportCSSText {
		t.Errorf("the style sheet renders as %d bytes, the file has %d", b.Len(), len(reportCSSText))
	}
	if !strings.Contains(reportPageText, "<style>\n{{template \"report.css\"}}</style>") {
		t.Error("report/report.html.tmpl does not include the style sheet inside <style>")
	}
}
