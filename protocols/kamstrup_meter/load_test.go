package kamstrupmeter

import "testing"

func TestLoadTemplate(t *testing.T) {
	p := loadTemplate(t)
	if _, ok := p.Sections[Name]; !ok {
		t.Fatal("no meter section")
	}
}
