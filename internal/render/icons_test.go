package render_test

import (
	"bytes"
	"image/png"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
)

func TestIconsExist(t *testing.T) {
	used := map[string]bool{}
	for _, e := range jamf.Events {
		m := render.Message(sample(t, e.Name), plainOptions)
		icon, ok := strings.CutPrefix(m.Attachments[0].ThumbURL, plainOptions.IconBaseURL+"/")
		if !ok {
			t.Errorf("%s: thumb_url = %q, want it under %s", e.Name, m.Attachments[0].ThumbURL, plainOptions.IconBaseURL)
			continue
		}
		used[icon] = true
	}
	unknown := render.Message(jamf.Envelope{Webhook: jamf.Webhook{Event: "Future"}, Event: []byte(`{}`)}, plainOptions)
	used[path.Base(unknown.Attachments[0].ThumbURL)] = true

	for icon := range used {
		b, err := fs.ReadFile(render.Static, "static/images/"+icon)
		if err != nil {
			t.Errorf("icon %s is used but missing: %v", icon, err)
			continue
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Errorf("icon %s is not a PNG: %v", icon, err)
			continue
		}
		if r := img.Bounds(); r.Dx() != 64 || r.Dy() != 64 {
			t.Errorf("icon %s is %dx%d, want 64x64", icon, r.Dx(), r.Dy())
		}
	}

	files, err := fs.Glob(render.Static, "static/images/*.png")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !used[path.Base(f)] {
			t.Errorf("icon %s is embedded but no message uses it", f)
		}
	}
}

func TestNoIconWithoutBaseURL(t *testing.T) {
	m := render.Message(sample(t, jamf.EventComputerAdded), render.Options{})
	if got := m.Attachments[0].ThumbURL; got != "" {
		t.Errorf("thumb_url = %q, want none without IconBaseURL", got)
	}
	m = render.Message(sample(t, jamf.EventComputerAdded), render.Options{IconBaseURL: "https://j.example.com/static/images/"})
	if got, want := m.Attachments[0].ThumbURL, "https://j.example.com/static/images/computer.png"; got != want {
		t.Errorf("thumb_url = %q, want %q", got, want)
	}
}
