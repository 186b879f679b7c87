package jamf

import (
	"reflect"
	"slices"
	"time"
)

// Computer is Jamf Pro's computer object. ComputerAdded,
// ComputerInventoryCompleted and ComputerPushCapabilityChanged send it as
// the event itself; ComputerCheckIn, ComputerPolicyFinished and
// ComputerPatchPolicyCompleted nest it under event.computer (older servers
// sent those flat too, which Decode accepts).
type Computer struct {
	JSSID               int64  `json:"jssID" jamf:"jssid"`
	UDID                string `json:"udid"`
	DeviceName          string `json:"deviceName"`
	Model               string `json:"model"`
	MacAddress          string `json:"macAddress"`
	AlternateMacAddress string `json:"alternateMacAddress"`
	SerialNumber        string `json:"serialNumber"`
	OSVersion           string `json:"osVersion"`
	OSBuild             string `json:"osBuild"`
	UserDirectoryID     string `json:"userDirectoryID"`
	Username            string `json:"username"`
	RealName            string `json:"realName"`
	EmailAddress        string `json:"emailAddress"`
	Phone               string `json:"phone"`
	Position            string `json:"position"`
	Department          string `json:"department"`
	Building            string `json:"building"`
	Room                string `json:"room"`
	IPAddress           string `json:"ipAddress"`
	// ReportedIPAddress is the address the computer reported itself; newer
	// servers send ReportedIPv4Address and ReportedIPv6Address instead.
	ReportedIPAddress   string `json:"reportedIpAddress"`
	ReportedIPv4Address string `json:"reportedIpV4Address"`
	ReportedIPv6Address string `json:"reportedIpV6Address"`
	// ManagementID is a UUID; it may arrive as a number and is kept as text.
	ManagementID string `json:"managementId"`
}

// ReportedIPs returns the addresses the computer reported itself, whichever
// of reportedIpAddress or reportedIpV4Address/reportedIpV6Address the server
// sent, without empty ones.
func (c Computer) ReportedIPs() []string {
	var ips []string
	for _, ip := range []string{c.ReportedIPAddress, c.ReportedIPv4Address, c.ReportedIPv6Address} {
		if ip != "" && !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	return ips
}

// MobileDevice is Jamf Pro's mobile device object, the event of every
// MobileDevice* event and the element of a smart mobile device group's
// added and removed devices.
type MobileDevice struct {
	JSSID               int64  `json:"jssID" jamf:"jssid"`
	UDID                string `json:"udid"`
	DeviceName          string `json:"deviceName"`
	Version             string `json:"version"`
	Model               string `json:"model"`
	ModelDisplay        string `json:"modelDisplay"`
	Product             string `json:"product"`
	BluetoothMacAddress string `json:"bluetoothMacAddress"`
	WifiMacAddress      string `json:"wifiMacAddress"`
	IMEI                string `json:"imei"`
	ICCID               string `json:"icciID" jamf:"iccid"`
	SerialNumber        string `json:"serialNumber"`
	UserDirectoryID     string `json:"userDirectoryID"`
	Username            string `json:"username"`
	Room                string `json:"room"`
	OSVersion           string `json:"osVersion"`
	OSBuild             string `json:"osBuild"`
	IPAddress           string `json:"ipAddress"`
	ManagementID        string `json:"managementId"`
	// MDMCommand, MDMCommandUUID and MDMCommandStatus are not in Jamf's
	// documented payload but appear in some captures of
	// MobileDeviceCommandCompleted and MobileDeviceCheckIn.
	MDMCommand       string `json:"mdmCommand" jamf:"command,commandName"`
	MDMCommandUUID   string `json:"mdmCommandUUID" jamf:"commandUUID"`
	MDMCommandStatus string `json:"mdmCommandStatus" jamf:"commandStatus,status"`
}

// OS returns the device's OS version, from osVersion or the duplicate
// version field.
func (d MobileDevice) OS() string {
	if d.OSVersion != "" {
		return d.OSVersion
	}
	return d.Version
}

// Server is the event of JSSStartup and JSSShutdown: one Jamf Pro web
// application node.
type Server struct {
	HostAddress        string `json:"hostAddress"`
	Institution        string `json:"institution"`
	IsClusterMaster    bool   `json:"isClusterMaster"`
	JSSURL             string `json:"jssUrl" jamf:"jssURL"`
	WebApplicationPath string `json:"webApplicationPath"`
}

// ComputerCheckIn is the event of ComputerCheckIn.
type ComputerCheckIn struct {
	Computer Computer `json:"computer"`
	// Trigger is what caused the check-in, e.g. CLIENT_CHECKIN.
	Trigger string `json:"trigger"`
	// Username is the user logged in at the time; it may differ from
	// Computer.Username, the assigned user.
	Username string `json:"username"`
}

// ComputerPolicyFinished is the event of ComputerPolicyFinished. The payload
// carries the policy's ID only, not its name.
type ComputerPolicyFinished struct {
	Computer Computer `json:"computer"`
	PolicyID int64    `json:"policyId" jamf:"policyID"`
	// Successful is nil when the payload does not say.
	Successful *bool `json:"successful"`
}

// ComputerPatchPolicyCompleted is the event of ComputerPatchPolicyCompleted.
type ComputerPatchPolicyCompleted struct {
	Computer        Computer `json:"computer"`
	DeployedVersion string   `json:"deployedVersion"`
	// EventActions are the values of eventActions.action, which Jamf sends
	// as a list or a single string; a bare list or string is accepted too.
	EventActions    []string `json:"eventActions" jamf:"unwrap=action"`
	PatchPolicyID   int64    `json:"patchPolicyId" jamf:"patchPolicyID"`
	PatchPolicyName string   `json:"patchPolicyName"`
	SoftwareTitleID int64    `json:"softwareTitleId" jamf:"softwareTitleID"`
	// Successful is nil when the payload does not say.
	Successful *bool `json:"successful"`
}

// DeviceAddedToDEP is the event of DeviceAddedToDEP: a device assigned to
// this server in Apple Business or School Manager. It has no Jamf Pro ID
// yet.
type DeviceAddedToDEP struct {
	AssetTag                          string    `json:"assetTag"`
	Description                       string    `json:"description"`
	DeviceAssignedDate                time.Time `json:"deviceAssignedDate"`
	DeviceEnrollmentProgramInstanceID int64     `json:"deviceEnrollmentProgramInstanceId" jamf:"deviceEnrollmentProgramInstanceID"`
	Model                             string    `json:"model"`
	SerialNumber                      string    `json:"serialNumber"`
}

// DeviceRateLimited is the event of DeviceRateLimited. Jamf Pro publishes no
// schema for it, so the identifying fields are best guesses and Fields holds
// the whole event object.
type DeviceRateLimited struct {
	JSSID        int64          `json:"jssID" jamf:"jssid"`
	UDID         string         `json:"udid"`
	DeviceName   string         `json:"deviceName"`
	SerialNumber string         `json:"serialNumber"`
	Fields       map[string]any `json:"-"`
}

// PatchSoftwareTitleUpdated is the event of PatchSoftwareTitleUpdated.
type PatchSoftwareTitleUpdated struct {
	// JSSID is the patch software title's ID.
	JSSID         int64     `json:"jssID" jamf:"jssid"`
	LastUpdate    time.Time `json:"lastUpdate"`
	LatestVersion string    `json:"latestVersion"`
	Name          string    `json:"name"`
	// ReportURLs comes from reportUrls, or from the single reportUrl string
	// older servers sent.
	ReportURLs []string `json:"reportUrls" jamf:"reportUrl,reportURLs,reportURL"`
}

// PushSent is the event of PushSent.
type PushSent struct {
	// ManagementID arrives as a number or a string and is kept as text.
	ManagementID string `json:"managementId" jamf:"managementID"`
	// JSSID is set by old servers, which sent jssid instead of managementId.
	JSSID int64  `json:"jssid" jamf:"jssID"`
	Type  string `json:"type"`
}

// RestAPIOperation is the event of RestAPIOperation.
type RestAPIOperation struct {
	AuthorizedUsername string `json:"authorizedUsername"`
	ObjectID           int64  `json:"objectID" jamf:"objectId"`
	ObjectName         string `json:"objectName"`
	ObjectTypeName     string `json:"objectTypeName"`
	// OperationSuccessful is nil when the payload does not say.
	OperationSuccessful *bool `json:"operationSuccessful"`
	// RestAPIOperationType is GET, POST, PUT, DELETE or another verb.
	RestAPIOperationType string `json:"restAPIOperationType"`
}

// SCEPChallenge is the event of SCEPChallenge.
type SCEPChallenge struct {
	SCEPServerURL     string       `json:"scepServerUrl" jamf:"scepServerURL"`
	PayloadIdentifier string       `json:"payloadIdentifier"`
	PayloadTypes      []string     `json:"payloadTypes"`
	TargetDevice      MobileDevice `json:"targetDevice"`
	TargetUser        SCEPUser     `json:"targetUser"`
}

// SCEPUser is the target user of a SCEPChallenge. The payload's password is
// deliberately not decoded, so that it cannot be shown anywhere.
type SCEPUser struct {
	BuildingID   int64  `json:"buildingID"`
	DepartmentID int64  `json:"departmentID"`
	DN           string `json:"dn"`
	Email        string `json:"email"`
	Phone        string `json:"phone"`
	Position     string `json:"position"`
	RealName     string `json:"realname" jamf:"realName"`
	Room         string `json:"room"`
	UID          string `json:"uid"`
	Username     string `json:"username"`
	UUID         string `json:"uuid"`
}

// SmartGroupComputerMembershipChange is the event of
// SmartGroupComputerMembershipChange. AddedDevices and RemovedDevices are
// empty unless the webhook sends the group's display fields; the ID lists
// are always there.
type SmartGroupComputerMembershipChange struct {
	GroupID        int64      `json:"jssid" jamf:"jssID"`
	Name           string     `json:"name"`
	AddedIDs       []int64    `json:"groupAddedDevicesIds" jamf:"groupAddedDeviceIds"`
	RemovedIDs     []int64    `json:"groupRemovedDevicesIds" jamf:"groupRemovedDeviceIds"`
	AddedDevices   []Computer `json:"groupAddedDevices"`
	RemovedDevices []Computer `json:"groupRemovedDevices"`
}

// SmartGroupMobileDeviceMembershipChange is the event of
// SmartGroupMobileDeviceMembershipChange.
type SmartGroupMobileDeviceMembershipChange struct {
	GroupID        int64          `json:"jssid" jamf:"jssID"`
	Name           string         `json:"name"`
	AddedIDs       []int64        `json:"groupAddedDevicesIds" jamf:"groupAddedDeviceIds"`
	RemovedIDs     []int64        `json:"groupRemovedDevicesIds" jamf:"groupRemovedDeviceIds"`
	AddedDevices   []MobileDevice `json:"groupAddedDevices"`
	RemovedDevices []MobileDevice `json:"groupRemovedDevices"`
}

// SmartGroupUserMembershipChange is the event of
// SmartGroupUserMembershipChange.
type SmartGroupUserMembershipChange struct {
	GroupID    int64   `json:"jssid" jamf:"jssID"`
	Name       string  `json:"name"`
	AddedIDs   []int64 `json:"groupAddedUserIds" jamf:"groupAddedUserIDs"`
	RemovedIDs []int64 `json:"groupRemovedUserIds" jamf:"groupRemovedUserIDs"`
}

// Unknown is an event that is not in the catalog, kept whole so that it can
// still be shown.
type Unknown struct {
	Fields map[string]any
}

// Decode decodes the envelope's event into the model of its event type,
// matched with Canonical:
//
//   - ComputerAdded, ComputerInventoryCompleted, ComputerPushCapabilityChanged: Computer
//   - every MobileDevice* event: MobileDevice
//   - JSSStartup, JSSShutdown: Server
//   - the other catalog events: the struct of the same name
//   - anything else: Unknown
//
// Decoding is lenient (see the field docs); it fails only when the event is
// not a JSON object, which Parse already rules out: an envelope from Parse is
// not scanned again (the dispatcher decodes every event it posts). It reads
// the fields straight from the event's bytes; only Unknown.Fields and
// DeviceRateLimited.Fields are generic maps, whose numbers are json.Number.
func Decode(env Envelope) (any, error) {
	obj := []byte(env.Event)
	if !env.parsed {
		if err := checkObject(obj); err != nil {
			return nil, err
		}
	}
	switch Canonical(env.Webhook.Event) {
	case EventComputerAdded, EventComputerInventoryCompleted, EventComputerPushCapabilityChanged:
		if nested, ok := lookupIn(obj, "computer"); ok && isObject(nested) {
			obj = nested
		}
		return decodeAs[Computer](obj), nil
	case EventComputerCheckIn:
		var e ComputerCheckIn
		fillWithComputer(reflect.ValueOf(&e).Elem(), &e.Computer, obj)
		return e, nil
	case EventComputerPolicyFinished:
		var e ComputerPolicyFinished
		fillWithComputer(reflect.ValueOf(&e).Elem(), &e.Computer, obj)
		return e, nil
	case EventComputerPatchPolicyCompleted:
		var e ComputerPatchPolicyCompleted
		fillWithComputer(reflect.ValueOf(&e).Elem(), &e.Computer, obj)
		return e, nil
	case EventMobileDeviceCheckIn, EventMobileDeviceCommandCompleted, EventMobileDeviceEnrolled,
		EventMobileDeviceInventoryCompleted, EventMobileDevicePushSent, EventMobileDeviceUnEnrolled:
		if nested, ok := lookupIn(obj, "mobileDevice"); ok && isObject(nested) {
			obj = nested
		}
		return decodeAs[MobileDevice](obj), nil
	case EventJSSStartup, EventJSSShutdown:
		return decodeAs[Server](obj), nil
	case EventDeviceAddedToDEP:
		return decodeAs[DeviceAddedToDEP](obj), nil
	case EventDeviceRateLimited:
		e := decodeAs[DeviceRateLimited](obj)
		fields, err := decodeObject(obj)
		if err != nil {
			return nil, err
		}
		e.Fields = fields
		return e, nil
	case EventPatchSoftwareTitleUpdated:
		return decodeAs[PatchSoftwareTitleUpdated](obj), nil
	case EventPushSent:
		return decodeAs[PushSent](obj), nil
	case EventRestAPIOperation:
		return decodeAs[RestAPIOperation](obj), nil
	case EventSCEPChallenge:
		return decodeAs[SCEPChallenge](obj), nil
	case EventSmartGroupComputerMembershipChange:
		return decodeAs[SmartGroupComputerMembershipChange](obj), nil
	case EventSmartGroupMobileDeviceMembershipChange:
		return decodeAs[SmartGroupMobileDeviceMembershipChange](obj), nil
	case EventSmartGroupUserMembershipChange:
		return decodeAs[SmartGroupUserMembershipChange](obj), nil
	default:
		fields, err := decodeObject(obj)
		if err != nil {
			return nil, err
		}
		return Unknown{Fields: fields}, nil
	}
}

// decodeAs fills a new T from the encoded object obj.
func decodeAs[T any](obj []byte) T {
	var v T
	fillStruct(reflect.ValueOf(&v).Elem(), obj)
	return v
}

// fillWithComputer fills the struct v from the encoded object obj, and v's
// computer c from obj.computer when that is an object, else from obj itself:
// the flat form of old servers.
func fillWithComputer(v reflect.Value, c *Computer, obj []byte) {
	var buf [32]member
	ms := appendMembers(buf[:0], obj)
	fillMembers(v, ms) // fills c from obj.computer when it is an object
	if nested, ok := lookup(ms, "computer"); !ok || !isObject(nested) {
		fillMembers(reflect.ValueOf(c).Elem(), ms)
	}
}
