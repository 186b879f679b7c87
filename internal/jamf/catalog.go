package jamf

import "strings"

// The webhook events Jamf Pro sends, spelled exactly as on the wire
// (webhook.webhookEvent).
const (
	EventComputerAdded                          = "ComputerAdded"
	EventComputerCheckIn                        = "ComputerCheckIn"
	EventComputerInventoryCompleted             = "ComputerInventoryCompleted"
	EventComputerPatchPolicyCompleted           = "ComputerPatchPolicyCompleted"
	EventComputerPolicyFinished                 = "ComputerPolicyFinished"
	EventComputerPushCapabilityChanged          = "ComputerPushCapabilityChanged"
	EventDeviceAddedToDEP                       = "DeviceAddedToDEP"
	EventDeviceRateLimited                      = "DeviceRateLimited"
	EventJSSShutdown                            = "JSSShutdown"
	EventJSSStartup                             = "JSSStartup"
	EventMobileDeviceCheckIn                    = "MobileDeviceCheckIn"
	EventMobileDeviceCommandCompleted           = "MobileDeviceCommandCompleted"
	EventMobileDeviceEnrolled                   = "MobileDeviceEnrolled"
	EventMobileDeviceInventoryCompleted         = "MobileDeviceInventoryCompleted"
	EventMobileDevicePushSent                   = "MobileDevicePushSent"
	EventMobileDeviceUnEnrolled                 = "MobileDeviceUnEnrolled"
	EventPatchSoftwareTitleUpdated              = "PatchSoftwareTitleUpdated"
	EventPushSent                               = "PushSent"
	EventRestAPIOperation                       = "RestAPIOperation"
	EventSCEPChallenge                          = "SCEPChallenge"
	EventSmartGroupComputerMembershipChange     = "SmartGroupComputerMembershipChange"
	EventSmartGroupMobileDeviceMembershipChange = "SmartGroupMobileDeviceMembershipChange"
	EventSmartGroupUserMembershipChange         = "SmartGroupUserMembershipChange"
)

// EventInfo describes one webhook event of the catalog.
type EventInfo struct {
	// Name is the exact wire spelling of webhook.webhookEvent.
	Name string
	// Description says in one sentence when Jamf Pro sends the event.
	Description string
}

// catalog is the source of Events and of Canonical's index, kept private so
// that a caller changing Events cannot change how names are recognised.
var catalog = [...]EventInfo{
	{EventComputerAdded, "A computer enrolled and a new inventory record was created."},
	{EventComputerCheckIn, "A managed computer checked in with Jamf Pro."},
	{EventComputerInventoryCompleted, "A computer finished an inventory update."},
	{EventComputerPatchPolicyCompleted, "A patch policy finished on a computer."},
	{EventComputerPolicyFinished, "A policy finished running on a computer."},
	{EventComputerPushCapabilityChanged, "A computer's ability to receive MDM push notifications changed."},
	{EventDeviceAddedToDEP, "A device was assigned to this server in Automated Device Enrollment (DEP)."},
	{EventDeviceRateLimited, "Jamf Pro rate limited a device (no public payload schema)."},
	{EventJSSShutdown, "A Jamf Pro web application node is shutting down."},
	{EventJSSStartup, "A Jamf Pro web application node started."},
	{EventMobileDeviceCheckIn, "A mobile device checked in with Jamf Pro."},
	{EventMobileDeviceCommandCompleted, "A mobile device acknowledged an MDM command."},
	{EventMobileDeviceEnrolled, "A mobile device enrolled."},
	{EventMobileDeviceInventoryCompleted, "A mobile device finished an inventory update."},
	{EventMobileDevicePushSent, "Jamf Pro sent a push notification to a mobile device."},
	{EventMobileDeviceUnEnrolled, "A mobile device was unenrolled."},
	{EventPatchSoftwareTitleUpdated, "A patch software title tracked by this server got a new version."},
	{EventPushSent, "Jamf Pro sent a push notification."},
	{EventRestAPIOperation, "Someone called the Jamf Pro API."},
	{EventSCEPChallenge, "Jamf Pro asked for a dynamic SCEP challenge for a device."},
	{EventSmartGroupComputerMembershipChange, "The members of a smart computer group changed."},
	{EventSmartGroupMobileDeviceMembershipChange, "The members of a smart mobile device group changed."},
	{EventSmartGroupUserMembershipChange, "The members of a smart user group changed."},
}

// Events lists the 23 webhook events Jamf Pro accepts, in alphabetical order.
var Events = append([]EventInfo(nil), catalog[:]...)

// canonical indexes the catalog by lower-cased name, and by name so that
// the usual spelling is found without lowering it.
var canonical = func() map[string]string {
	m := make(map[string]string, 2*len(catalog))
	for _, e := range catalog {
		m[strings.ToLower(e.Name)] = e.Name
		m[e.Name] = e.Name
	}
	return m
}()

// Canonical returns the catalog spelling of an event name matched
// case-insensitively, so "ComputerCheckin" gives "ComputerCheckIn". A name
// that is not in the catalog is returned as is.
func Canonical(name string) string {
	if c, ok := canonical[name]; ok {
		return c // spelled as in the catalog, as Jamf Pro sends it
	}
	if c, ok := canonical[strings.ToLower(strings.TrimSpace(name))]; ok {
		return c
	}
	return name
}

// Known reports whether name is in the catalog, compared case-insensitively.
func Known(name string) bool {
	_, ok := canonical[strings.ToLower(strings.TrimSpace(name))]
	return ok
}

// ReportsOutcome reports whether events of type name (matched as Known
// matches) say whether what they report succeeded: a policy or a patch
// policy that finished (successful) and an API operation
// (operationSuccessful). A channel can show only the failures of these.
func ReportsOutcome(name string) bool {
	switch Canonical(name) {
	case EventComputerPolicyFinished, EventComputerPatchPolicyCompleted, EventRestAPIOperation:
		return true
	}
	return false
}
