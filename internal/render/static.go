package render

import "embed"

// Static holds the icons messages name in thumb_url, as
// static/images/<icon>.png. The installer serves it under /static/, so
// Options.IconBaseURL is the public base URL followed by /static/images.
//
//go:embed static
var Static embed.FS
