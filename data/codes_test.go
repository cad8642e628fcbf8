package data

import "testing"

func TestCodesResetAndOwned(t *testing.T) {
	c := NewCodesSize(4)
	a, b := c.ID("ICD10/E11.9"), c.IDOwned("SNOMED/44054006")
	if a != 0 || b != 1 || c.ID("ICD10/E11.9") != 0 || c.IDOwned("SNOMED/44054006") != 1 || c.Len() != 2 {
		t.Fatalf("ids %d %d, len %d", a, b, c.Len())
	}
	if c.Name(1) != "SNOMED/44054006" {
		t.Errorf("name %q", c.Name(1))
	}
	c.Reset()
	if c.Len() != 0 {
		t.Fatalf("len after reset %d", c.Len())
	}
	if _, ok := c.Lookup("ICD10/E11.9"); ok {
		t.Error("code survived Reset")
	}
	if id := c.ID("LOINC/4548-4"); id != 0 || c.Name(0) != "LOINC/4548-4" {
		t.Errorf("after reset: id %d name %q", id, c.Name(0))
	}
}
