// Package jamf models Jamf Pro webhooks: the envelope every POST carries
// (Parse), the catalog of the 23 events Jamf Pro sends (Events, Canonical),
// typed events decoded leniently across the version drift seen in the wild
// (Decode), and the conversion of XML webhooks to the equivalent JSON
// (FromXML). It is a leaf package and imports nothing internal.
package jamf
