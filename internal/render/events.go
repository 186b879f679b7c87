package render

import (
	"strconv"
	"strings"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// computerEvent renders the events whose event is a computer.
func computerEvent(name string, comp jamf.Computer, l links) *card {
	c := newCard(name)
	c.titleLink, c.summary = l.computer(comp.JSSID), summary(comp.DeviceName, comp.SerialNumber)
	c.item = computerItem(comp, l)
	switch name {
	case jamf.EventComputerAdded:
		c.line("A new computer has been added!")
	case jamf.EventComputerInventoryCompleted:
		c.line("A computer has submitted inventory.")
	default:
		c.line("A computer's ability to receive MDM push notifications has changed.")
	}
	computerLines(c, comp, l)
	return c
}

// computerLines adds a computer's identity, as the original showed it, then
// its model and OS.
func computerLines(c *card, comp jamf.Computer, l links) {
	c.line(pair("ID", id(comp.JSSID, l.computer(comp.JSSID))), pair("Serial Number", val(comp.SerialNumber)))
	c.line(pair("Computer Name", val(comp.DeviceName)), pair("User", val(comp.Username)))
	c.line(optPair("Model", comp.Model), optPair("OS", osText("macOS", comp.OSVersion, comp.OSBuild)))
	c.field("IP Address", comp.IPAddress)
	c.field("Reported IP", strings.Join(comp.ReportedIPs(), ", "))
}

// computerItem names a computer in a digest: its name, else its serial
// number, linked to it.
func computerItem(comp jamf.Computer, l links) string {
	return objectItem(comp.DeviceName, comp.SerialNumber, comp.JSSID, l.computer(comp.JSSID))
}

// withDetail adds a detail to a digest item, e.g. "MBP-01 (policy 87)";
// either may be empty.
func withDetail(item, detail string) string {
	switch {
	case item == "":
		return detail
	case detail == "":
		return item
	}
	return item + " (" + detail + ")"
}

// objectItem names a device in a digest by name, else by alt (a serial
// number), else by ID, linked to url when it is set; "" when nothing names it.
func objectItem(name, alt string, jssID int64, url string) string {
	label := short(name)
	if label == "" {
		label = short(alt)
	}
	if label == "" && jssID > 0 {
		label = "ID " + strconv.FormatInt(jssID, 10)
	}
	if label == "" {
		return ""
	}
	return link(url, label)
}

func computerCheckIn(e jamf.ComputerCheckIn, l links) *card {
	c := newCard(jamf.EventComputerCheckIn)
	c.titleLink, c.summary = l.computer(e.Computer.JSSID), summary(e.Computer.DeviceName, e.Computer.SerialNumber)
	c.item = computerItem(e.Computer, l)
	c.line("A computer check-in has occurred.")
	computerLines(c, e.Computer, l)
	c.field("Trigger", e.Trigger)
	c.field("Logged-In User", e.Username)
	return c
}

func policyFinished(e jamf.ComputerPolicyFinished, l links) *card {
	c := newCard(jamf.EventComputerPolicyFinished)
	c.color, c.outcome = result(e)
	c.titleLink = l.policy(e.PolicyID)
	c.summary = "policy " + strconv.FormatInt(e.PolicyID, 10) + " " + strings.ToLower(status(e.Successful))
	c.item = computerItem(e.Computer, l)
	if e.PolicyID > 0 {
		c.item = withDetail(c.item, "policy "+id(e.PolicyID, l.policy(e.PolicyID)))
	}
	if e.PolicyID <= 0 {
		c.summary = "policy " + strings.ToLower(status(e.Successful))
	}
	if d := summary(e.Computer.DeviceName, ""); d != "" {
		c.summary += " on " + d
	}
	switch {
	case e.Successful == nil:
		c.line("A policy has finished on a computer.")
	case *e.Successful:
		c.line("A policy has finished successfully on a computer.")
	default:
		c.line("A policy has failed on a computer.")
	}
	c.line(pair("Policy ID", id(e.PolicyID, l.policy(e.PolicyID))), pair("Status", status(e.Successful)))
	computerLines(c, e.Computer, l)
	return c
}

func patchPolicyCompleted(e jamf.ComputerPatchPolicyCompleted, l links) *card {
	policyURL := l.patchPolicy(e.SoftwareTitleID, e.PatchPolicyID)
	c := newCard(jamf.EventComputerPatchPolicyCompleted)
	c.color, c.outcome = result(e)
	c.titleLink, c.summary = policyURL, summary(e.PatchPolicyName, e.DeployedVersion)
	c.item = withDetail(computerItem(e.Computer, l), link(policyURL, short(e.PatchPolicyName)))
	if d := summary(e.Computer.DeviceName, ""); d != "" {
		c.summary = strings.TrimSpace(c.summary + " on " + d)
	}
	switch {
	case e.Successful == nil:
		c.line("A patch policy has completed on a computer.")
	case *e.Successful:
		c.line("A patch policy has completed successfully on a computer.")
	default:
		c.line("A patch policy has failed on a computer.")
	}
	c.line(pair("Patch Policy", link(policyURL, val(e.PatchPolicyName))), pair("Patch Policy ID", id(e.PatchPolicyID, "")))
	c.line(pair("Deployed Version", val(e.DeployedVersion)), pair("Status", status(e.Successful)))
	if e.SoftwareTitleID > 0 {
		c.line(pair("Software Title ID", id(e.SoftwareTitleID, l.patchTitle(e.SoftwareTitleID))))
	}
	if len(e.EventActions) > 0 {
		items := make([]string, 0, min(len(e.EventActions), maxListItems))
		for _, a := range e.EventActions[:min(len(e.EventActions), maxListItems)] {
			items = append(items, short(a))
		}
		c.line(pair("Actions", list(items, len(e.EventActions), 600)))
	}
	computerLines(c, e.Computer, l)
	return c
}

// mobileEvent renders the events whose event is a mobile device.
func mobileEvent(name string, d jamf.MobileDevice, l links) *card {
	c := newCard(name)
	c.titleLink, c.summary = l.mobileDevice(d.JSSID), summary(d.DeviceName, d.SerialNumber)
	c.item = objectItem(d.DeviceName, d.SerialNumber, d.JSSID, l.mobileDevice(d.JSSID))
	switch name {
	case jamf.EventMobileDeviceCheckIn:
		c.line("A mobile device check-in has occurred.")
	case jamf.EventMobileDeviceEnrolled:
		c.line("A mobile device has been enrolled!")
	case jamf.EventMobileDeviceUnEnrolled:
		c.line("A mobile device has been un-enrolled!")
	case jamf.EventMobileDeviceInventoryCompleted:
		c.line("A mobile device has submitted inventory.")
	case jamf.EventMobileDevicePushSent:
		c.line("Jamf Pro has sent a push notification to a mobile device.")
	default:
		c.color, c.outcome = result(d)
		c.item = withDetail(c.item, short(d.MDMCommand))
		c.line("A mobile device has completed an MDM command.")
		c.line(optPair("Command", d.MDMCommand), optPair("Status", d.MDMCommandStatus))
		c.field("Command UUID", d.MDMCommandUUID)
	}
	mobileLines(c, d, l)
	return c
}

// result is the colour and outcome that the content of an event decides:
// whether a policy, a patch policy or an API operation succeeded (an API
// operation stays grey, as in the original), and the status of an MDM
// command (for the MobileDevice of MobileDeviceCommandCompleted). Other
// events have their kind's colour and no outcome; a smart group change is
// coloured by groupChange from its members.
func result(ev any) (string, outcome) {
	switch e := ev.(type) {
	case jamf.ComputerPolicyFinished:
		return statusColor(e.Successful), outcomeOf(e.Successful)
	case jamf.ComputerPatchPolicyCompleted:
		return statusColor(e.Successful), outcomeOf(e.Successful)
	case jamf.RestAPIOperation:
		return kinds[kindIndex[jamf.EventRestAPIOperation]].color, outcomeOf(e.OperationSuccessful)
	case jamf.MobileDevice:
		return commandResult(e.MDMCommandStatus)
	}
	return colorGrey, outcomeNone
}

// commandResult colours an MDM command status and names its outcome: red
// for errors, yellow when the device deferred it (NotNow), grey otherwise,
// which is a success when the device acknowledged it.
func commandResult(status string) (string, outcome) {
	s := strings.ToLower(status)
	switch {
	case strings.Contains(s, "error") || strings.Contains(s, "fail"):
		return colorRed, outcomeFailed
	case strings.Contains(s, "notnow") || strings.Contains(s, "not now"):
		return colorYellow, outcomeDeferred
	case strings.Contains(s, "acknowledged"):
		return colorGrey, outcomeSucceeded
	}
	return colorGrey, outcomeNone
}

// mobileLines adds a mobile device's identity, as the original showed it,
// then its model and OS.
func mobileLines(c *card, d jamf.MobileDevice, l links) {
	c.line(pair("ID", id(d.JSSID, l.mobileDevice(d.JSSID))), pair("Serial Number", val(d.SerialNumber)))
	c.line(pair("Device Name", val(d.DeviceName)), pair("User", val(d.Username)))
	c.line(optPair("Model", modelText(d)), optPair("OS", osText("", d.OS(), d.OSBuild)))
	c.field("IP Address", d.IPAddress)
}

// modelText names a mobile device's model, e.g. "iPad (10th generation)
// (iPad13,18)".
func modelText(d jamf.MobileDevice) string {
	display, model := strings.TrimSpace(d.ModelDisplay), strings.TrimSpace(d.Model)
	switch {
	case display != "" && model != "" && display != model:
		return display + " (" + model + ")"
	case display != "":
		return display
	default:
		return model
	}
}

func serverEvent(name string, s jamf.Server) *card {
	c := newCard(name)
	c.summary = short(s.JSSURL)
	c.item = objectItem(s.JSSURL, s.HostAddress, 0, "")
	if name == jamf.EventJSSShutdown {
		c.line("The Jamf Pro web app " + bold(val(s.JSSURL)) + " has initiated a shutdown." + master(s))
	} else {
		c.line("The Jamf Pro web app " + bold(val(s.JSSURL)) + " has started up." + master(s))
	}
	c.field("Host Address", s.HostAddress)
	c.field("Institution", s.Institution)
	return c
}

// master marks the cluster's master node, as the original did.
func master(s jamf.Server) string {
	if s.IsClusterMaster {
		return " *(master)*"
	}
	return ""
}

func deviceAddedToDEP(e jamf.DeviceAddedToDEP) *card {
	c := newCard(jamf.EventDeviceAddedToDEP)
	c.summary = summary(e.SerialNumber, e.Model)
	c.line("A device has been assigned to this Jamf Pro server in Apple Business or School Manager.")
	c.line(pair("Serial Number", val(e.SerialNumber)), pair("Model", val(e.Model)))
	c.line(optPair("Asset Tag", e.AssetTag), optPair("Description", e.Description))
	var instance string
	if e.DeviceEnrollmentProgramInstanceID > 0 {
		instance = strconv.FormatInt(e.DeviceEnrollmentProgramInstanceID, 10)
	}
	c.line(optPair("Assigned", when(e.DeviceAssignedDate)), optPair("ADE Instance ID", instance))
	return c
}

func deviceRateLimited(e jamf.DeviceRateLimited) *card {
	c := newCard(jamf.EventDeviceRateLimited)
	c.summary = summary(e.DeviceName, e.SerialNumber)
	c.item = objectItem(e.DeviceName, e.SerialNumber, e.JSSID, "")
	c.line("Jamf Pro has rate limited a device that contacted it too often.")
	var jssID string
	if e.JSSID > 0 {
		jssID = strconv.FormatInt(e.JSSID, 10)
	}
	c.line(optPair("Device Name", e.DeviceName), optPair("Serial Number", e.SerialNumber), optPair("ID", jssID))
	if len(e.Fields) == 0 {
		c.line("No details were included in the webhook.")
		return c
	}
	c.line("*Details:*")
	fieldLines(c, e.Fields, maxText-600)
	return c
}

func patchTitleUpdated(e jamf.PatchSoftwareTitleUpdated, l links) *card {
	c := newCard(jamf.EventPatchSoftwareTitleUpdated)
	c.titleLink, c.summary = l.patchTitle(e.JSSID), summary(e.Name, e.LatestVersion)
	c.item = withDetail(objectItem(e.Name, "", e.JSSID, l.patchTitle(e.JSSID)), short(e.LatestVersion))
	c.line("Jamf Pro has received a new patch definition update.")
	var reports []string
	for _, raw := range e.ReportURLs {
		if u := safeURL(raw); u != "" && len(reports) < 5 {
			label := "Click here to view the report"
			if len(reports) > 0 {
				label = "Report " + strconv.Itoa(len(reports)+1)
			}
			reports = append(reports, link(u, label))
		}
	}
	switch {
	case len(reports) > 0:
		c.line(strings.Join(reports, " | "))
	case len(e.ReportURLs) > 0:
		c.line(pair("Report", val(e.ReportURLs[0])))
	}
	c.line(pair("Software Title", link(l.patchTitle(e.JSSID), val(e.Name))), pair("New Version", val(e.LatestVersion)))
	c.field("Last Update", when(e.LastUpdate))
	return c
}

func pushSent(e jamf.PushSent) *card {
	c := newCard(jamf.EventPushSent)
	c.summary = short(e.ManagementID)
	var jssID string
	if e.JSSID > 0 {
		jssID = strconv.FormatInt(e.JSSID, 10)
		if c.summary == "" {
			c.summary = "ID " + jssID
		}
	}
	c.line("Jamf Pro has sent a push notification.")
	c.line(optPair("Management ID", e.ManagementID), optPair("ID", jssID), optPair("Type", e.Type))
	return c
}

func restAPIOperation(e jamf.RestAPIOperation, l links) *card {
	objectURL := l.apiObject(e.ObjectTypeName, e.RestAPIOperationType, e.ObjectID)
	c := newCard(jamf.EventRestAPIOperation)
	c.titleLink = objectURL
	c.summary = strings.TrimSpace(short(e.RestAPIOperationType) + " " + summary(e.ObjectName, e.ObjectTypeName) + " by " + short(e.AuthorizedUsername))
	c.color, c.outcome = result(e)
	c.item = link(objectURL, c.summary)
	c.line("A REST API operation has been performed.")
	c.line(pair("API Object Type", val(e.ObjectTypeName)), pair("Name", val(e.ObjectName)), pair("ID", id(e.ObjectID, objectURL)))
	c.line(pair("User", val(e.AuthorizedUsername)), pair("Action", val(e.RestAPIOperationType)), "*Success?* "+pythonBool(e.OperationSuccessful))
	return c
}

// pythonBool writes a boolean as the original (Python) did.
func pythonBool(b *bool) string {
	switch {
	case b == nil:
		return none
	case *b:
		return "True"
	default:
		return "False"
	}
}

// scepChallenge renders a SCEPChallenge. The target user's password is
// never decoded, so it cannot appear here.
func scepChallenge(e jamf.SCEPChallenge) *card {
	d, u := e.TargetDevice, e.TargetUser
	c := newCard(jamf.EventSCEPChallenge)
	c.summary = summary(d.DeviceName, d.SerialNumber)
	c.item = objectItem(d.DeviceName, d.SerialNumber, 0, "")
	c.line("Jamf Pro has requested a dynamic SCEP challenge for a device.")
	c.line(pair("Device Name", val(d.DeviceName)), pair("Serial Number", val(d.SerialNumber)))
	c.line(optPair("Model", modelText(d)), optPair("OS", osText("", d.OS(), d.OSBuild)))
	c.line(pair("User", val(u.Username)), optPair("Name", u.RealName), optPair("Email", u.Email))
	c.field("SCEP Server", e.SCEPServerURL)
	c.field("Payload Identifier", e.PayloadIdentifier)
	c.field("Payload Types", strings.Join(e.PayloadTypes, ", "))
	return c
}

// group is what the three smart group events have in common.
type group struct {
	kind       string // "computer", "mobile device" or "user"
	id         int64
	name       string
	url        string
	added      []string // escaped items, at most maxListItems
	addedN     int
	removed    []string
	removedN   int
	event      string
	memberWord string
}

func computerGroupChange(e jamf.SmartGroupComputerMembershipChange, l links) *card {
	g := group{event: jamf.EventSmartGroupComputerMembershipChange, kind: "computer", memberWord: "computers", id: e.GroupID, name: e.Name, url: l.page("smartComputerGroups.html", e.GroupID)}
	g.added, g.addedN = computerItems(e.AddedDevices, e.AddedIDs, l)
	g.removed, g.removedN = computerItems(e.RemovedDevices, e.RemovedIDs, l)
	return groupChange(g)
}

func mobileGroupChange(e jamf.SmartGroupMobileDeviceMembershipChange, l links) *card {
	g := group{event: jamf.EventSmartGroupMobileDeviceMembershipChange, kind: "mobile device", memberWord: "mobile devices", id: e.GroupID, name: e.Name, url: l.page("smartMobileDeviceGroups.html", e.GroupID)}
	g.added, g.addedN = mobileItems(e.AddedDevices, e.AddedIDs, l)
	g.removed, g.removedN = mobileItems(e.RemovedDevices, e.RemovedIDs, l)
	return groupChange(g)
}

func userGroupChange(e jamf.SmartGroupUserMembershipChange, l links) *card {
	g := group{event: jamf.EventSmartGroupUserMembershipChange, kind: "user", memberWord: "users", id: e.GroupID, name: e.Name, url: l.page("smartUserGroups.html", e.GroupID)}
	g.added, g.addedN = idItems(e.AddedIDs, nil)
	g.removed, g.removedN = idItems(e.RemovedIDs, nil)
	return groupChange(g)
}

// computerItems lists a group change's computers by name and ID when the
// webhook sent the device objects, else by ID.
func computerItems(devices []jamf.Computer, ids []int64, l links) ([]string, int) {
	if len(devices) == 0 {
		return idItems(ids, l.computer)
	}
	items := make([]string, 0, min(len(devices), maxListItems))
	for _, d := range devices[:min(len(devices), maxListItems)] {
		items = append(items, deviceItem(d.DeviceName, d.JSSID, l.computer(d.JSSID)))
	}
	return items, max(len(devices), len(ids))
}

// mobileItems is computerItems for mobile devices.
func mobileItems(devices []jamf.MobileDevice, ids []int64, l links) ([]string, int) {
	if len(devices) == 0 {
		return idItems(ids, l.mobileDevice)
	}
	items := make([]string, 0, min(len(devices), maxListItems))
	for _, d := range devices[:min(len(devices), maxListItems)] {
		items = append(items, deviceItem(d.DeviceName, d.JSSID, l.mobileDevice(d.JSSID)))
	}
	return items, max(len(devices), len(ids))
}

// deviceItem formats "name (ID)", the ID linked when url is set.
func deviceItem(name string, jssID int64, url string) string {
	n := short(name)
	switch {
	case n == "" && jssID <= 0:
		return none
	case n == "":
		return id(jssID, url)
	case jssID <= 0:
		return n
	default:
		return n + " (" + id(jssID, url) + ")"
	}
}

// idItems lists IDs, linked by page when it is set.
func idItems(ids []int64, page func(int64) string) ([]string, int) {
	items := make([]string, 0, min(len(ids), maxListItems))
	for _, n := range ids[:min(len(ids), maxListItems)] {
		url := ""
		if page != nil {
			url = page(n)
		}
		items = append(items, id(n, url))
	}
	return items, len(ids)
}

// groupChange renders a smart group membership change: green when members
// only joined, yellow when some left, grey when the webhook lists none.
func groupChange(g group) *card {
	c := newCard(g.event)
	c.titleLink = g.url
	switch {
	case g.removedN > 0:
		c.color = colorYellow
	case g.addedN > 0:
		c.color = colorGreen
	}
	name := val(g.name)
	if strings.TrimSpace(g.name) == "" && g.id > 0 {
		name = "ID " + strconv.FormatInt(g.id, 10)
	}
	c.summary = short(g.name)
	if c.summary == "" {
		c.summary = "group " + strconv.FormatInt(max(g.id, 0), 10)
	}
	c.summary += ": " + strconv.Itoa(g.addedN) + " added, " + strconv.Itoa(g.removedN) + " removed"
	c.item = withDetail(objectItem(g.name, "", g.id, g.url), "+"+strconv.Itoa(g.addedN)+" \u2212"+strconv.Itoa(g.removedN))
	c.line("The membership of smart " + g.kind + " group " + bold(link(g.url, name)) + " has changed.")
	c.line(pair("Group ID", id(g.id, "")))
	const budget = (maxText - 800) / 2
	if g.addedN > 0 {
		c.line(pair("Added ("+strconv.Itoa(g.addedN)+")", list(g.added, g.addedN, budget)))
	}
	if g.removedN > 0 {
		c.line(pair("Removed ("+strconv.Itoa(g.removedN)+")", list(g.removed, g.removedN, budget)))
	}
	if g.addedN == 0 && g.removedN == 0 {
		c.line("No " + g.memberWord + " were added or removed.")
	}
	c.fields = append(c.fields,
		slackField("Added", strconv.Itoa(g.addedN)),
		slackField("Removed", strconv.Itoa(g.removedN)),
	)
	return c
}
