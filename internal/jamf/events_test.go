package jamf_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// sampleComputer is the computer of the computer samples.
var sampleComputer = jamf.Computer{
	JSSID:               1322,
	UDID:                "6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42",
	DeviceName:          "MBP-JRIVERA-01",
	Model:               "MacBook Pro (14-inch, 2023)",
	MacAddress:          "3C:A6:F6:12:4B:7E",
	AlternateMacAddress: "3E:A6:F6:12:4B:7F",
	SerialNumber:        "C02FAKE1Q6L4",
	OSVersion:           "14.6.1",
	OSBuild:             "23G93",
	UserDirectoryID:     "-1",
	Username:            "jrivera",
	RealName:            "Jordan Rivera",
	EmailAddress:        "jordan.rivera@example.com",
	Phone:               "555-0142",
	Position:            "Software Engineer",
	Department:          "Engineering",
	Building:            "HQ",
	Room:                "3A-101",
	IPAddress:           "203.0.113.45",
	ReportedIPAddress:   "192.168.10.23",
	ManagementID:        "8f5c2d9e-1b3a-4e7f-9a6c-2d4b8e0f1a37",
}

// sampleMobile is the device of the mobile device samples.
var sampleMobile = jamf.MobileDevice{
	JSSID:               215,
	UDID:                "00008101-000A1B2C3D4E5F6A",
	DeviceName:          "iPad-LIB-0042",
	Version:             "18.1.1",
	Model:               "iPad13,18",
	ModelDisplay:        "iPad (10th generation)",
	Product:             "iPad13,18",
	BluetoothMacAddress: "F8:4D:89:1A:2C:3D",
	WifiMacAddress:      "F8:4D:89:1A:2C:3C",
	SerialNumber:        "DMPFAKE3Q1GC",
	UserDirectoryID:     "-1",
	Username:            "apatel",
	Room:                "Library",
	OSVersion:           "18.1.1",
	OSBuild:             "22B91",
	IPAddress:           "198.51.100.77",
	ManagementID:        "c1d2e3f4-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
}

func ptr[T any](v T) *T { return &v }

func TestDecodeSamples(t *testing.T) {
	groupMobile := sampleMobile
	groupMobile.ManagementID = ""
	server := jamf.Server{
		HostAddress:        "10.20.30.41",
		Institution:        "Example Corp",
		JSSURL:             "https://example.jamfcloud.com/",
		WebApplicationPath: "/usr/local/jss/tomcat/webapps/ROOT",
	}
	master := server
	master.IsClusterMaster = true

	tests := []struct {
		event string
		want  any
	}{
		{jamf.EventComputerAdded, sampleComputer},
		{jamf.EventComputerCheckIn, jamf.ComputerCheckIn{Computer: sampleComputer, Trigger: "CLIENT_CHECKIN", Username: "jrivera"}},
		{jamf.EventComputerInventoryCompleted, sampleComputer},
		{jamf.EventComputerPatchPolicyCompleted, jamf.ComputerPatchPolicyCompleted{
			Computer:        sampleComputer,
			DeployedVersion: "131.0.6778.86",
			EventActions:    []string{"string", "string"},
			PatchPolicyID:   42,
			PatchPolicyName: "Google Chrome - Latest",
			SoftwareTitleID: 7,
			Successful:      ptr(true),
		}},
		{jamf.EventComputerPolicyFinished, jamf.ComputerPolicyFinished{Computer: sampleComputer, PolicyID: 87, Successful: ptr(false)}},
		{jamf.EventComputerPushCapabilityChanged, sampleComputer},
		{jamf.EventDeviceAddedToDEP, jamf.DeviceAddedToDEP{
			AssetTag:                          "IT-004417",
			Description:                       `MacBook Air 13" M3 Midnight`,
			DeviceAssignedDate:                time.UnixMilli(1732867200000).UTC(),
			DeviceEnrollmentProgramInstanceID: 1,
			Model:                             "MacBook Air",
			SerialNumber:                      "FVFAKE7XQ6L9",
		}},
		{jamf.EventDeviceRateLimited, jamf.DeviceRateLimited{Fields: map[string]any{}}},
		{jamf.EventJSSShutdown, server},
		{jamf.EventJSSStartup, master},
		{jamf.EventMobileDeviceCheckIn, sampleMobile},
		{jamf.EventMobileDeviceCommandCompleted, sampleMobile},
		{jamf.EventMobileDeviceEnrolled, sampleMobile},
		{jamf.EventMobileDeviceInventoryCompleted, sampleMobile},
		{jamf.EventMobileDevicePushSent, sampleMobile},
		{jamf.EventMobileDeviceUnEnrolled, sampleMobile},
		{jamf.EventPatchSoftwareTitleUpdated, jamf.PatchSoftwareTitleUpdated{
			JSSID:         7,
			LastUpdate:    time.UnixMilli(1732876500000).UTC(),
			LatestVersion: "131.0.6778.86",
			Name:          "Google Chrome",
			ReportURLs:    []string{"https://example.jamfcloud.com//view/patch/7/report"},
		}},
		{jamf.EventPushSent, jamf.PushSent{ManagementID: "1322", Type: "PushSent"}},
		{jamf.EventRestAPIOperation, jamf.RestAPIOperation{
			AuthorizedUsername:   "svc-automation",
			ObjectID:             87,
			ObjectName:           "Install Zoom",
			ObjectTypeName:       "Policy",
			OperationSuccessful:  ptr(true),
			RestAPIOperationType: "PUT",
		}},
		{jamf.EventSCEPChallenge, jamf.SCEPChallenge{
			SCEPServerURL:     "https://ca.example.com/scep/wifi",
			PayloadIdentifier: "com.example.wifi.scep.7E1C2B9A",
			PayloadTypes:      []string{"com.apple.security.scep"},
			TargetDevice: jamf.MobileDevice{
				BluetoothMacAddress: "F8:4D:89:1A:2C:3D",
				DeviceName:          "MBP-JRIVERA-01",
				Model:               "Mac15,6",
				ModelDisplay:        "MacBook Pro (14-inch, 2023)",
				OSBuild:             "23G93",
				OSVersion:           "14.6.1",
				Product:             "Mac15,6",
				Room:                "3A-101",
				SerialNumber:        "C02FAKE1Q6L4",
				UDID:                "6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42",
				UserDirectoryID:     "-1",
				Version:             "14.6.1",
				WifiMacAddress:      "3C:A6:F6:12:4B:7E",
			},
			TargetUser: jamf.SCEPUser{
				BuildingID:   1,
				DepartmentID: 3,
				DN:           "uid=jrivera,ou=users,dc=example,dc=com",
				Email:        "jordan.rivera@example.com",
				Phone:        "555-0142",
				Position:     "Software Engineer",
				RealName:     "Jordan Rivera",
				Room:         "3A-101",
				UID:          "1042",
				Username:     "jrivera",
				UUID:         "4b7e2a91-6c3d-4f58-9e1a-0d2c7b6f5a34",
			},
		}},
		{jamf.EventSmartGroupComputerMembershipChange, jamf.SmartGroupComputerMembershipChange{
			GroupID:    56,
			Name:       "FileVault Not Enabled",
			AddedIDs:   []int64{1322, 1407},
			RemovedIDs: []int64{988},
		}},
		{jamf.EventSmartGroupMobileDeviceMembershipChange, jamf.SmartGroupMobileDeviceMembershipChange{
			GroupID:      12,
			Name:         "iPadOS below 18.1",
			AddedIDs:     []int64{215},
			AddedDevices: []jamf.MobileDevice{groupMobile},
		}},
		{jamf.EventSmartGroupUserMembershipChange, jamf.SmartGroupUserMembershipChange{
			GroupID:  4,
			Name:     "Contractors",
			AddedIDs: []int64{311},
		}},
	}
	if len(tests) != len(jamf.Events) {
		t.Fatalf("%d cases, want one per event (%d)", len(tests), len(jamf.Events))
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			env, err := jamf.Parse(readSample(t, tt.event+".json"))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			got, err := jamf.Decode(env)
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decode() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeDrift(t *testing.T) {
	tests := []struct {
		name  string
		event string
		body  string
		want  any
	}{
		{
			name:  "check-in with flat computer",
			event: jamf.EventComputerCheckIn,
			body:  `{"jssID":5,"deviceName":"mac","serialNumber":"S1","username":"amy","trigger":"CLIENT_CHECKIN"}`,
			want: jamf.ComputerCheckIn{
				Computer: jamf.Computer{JSSID: 5, DeviceName: "mac", SerialNumber: "S1", Username: "amy"},
				Trigger:  "CLIENT_CHECKIN",
				Username: "amy",
			},
		},
		{
			name:  "old check-in spelling",
			event: "ComputerCheckin",
			body:  `{"computer":{"jssID":5},"trigger":"LOGIN","username":"bob"}`,
			want:  jamf.ComputerCheckIn{Computer: jamf.Computer{JSSID: 5}, Trigger: "LOGIN", Username: "bob"},
		},
		{
			name:  "policy finished with flat computer",
			event: jamf.EventComputerPolicyFinished,
			body:  `{"jssID":9,"deviceName":"mac","policyId":87,"successful":true}`,
			want:  jamf.ComputerPolicyFinished{Computer: jamf.Computer{JSSID: 9, DeviceName: "mac"}, PolicyID: 87, Successful: ptr(true)},
		},
		{
			name:  "computer that is not an object falls back to the event",
			event: jamf.EventComputerPolicyFinished,
			body:  `{"computer":"mac","jssID":9,"policyId":"87"}`,
			want:  jamf.ComputerPolicyFinished{Computer: jamf.Computer{JSSID: 9}, PolicyID: 87},
		},
		{
			name:  "computer added nested under computer",
			event: jamf.EventComputerAdded,
			body:  `{"computer":{"jssID":3,"deviceName":"nested"}}`,
			want:  jamf.Computer{JSSID: 3, DeviceName: "nested"},
		},
		{
			name:  "lower-case jssid",
			event: jamf.EventComputerAdded,
			body:  `{"jssid":44}`,
			want:  jamf.Computer{JSSID: 44},
		},
		{
			name:  "upper-case JSSID",
			event: jamf.EventMobileDeviceEnrolled,
			body:  `{"JSSID":"45","ICCID":"8901"}`,
			want:  jamf.MobileDevice{JSSID: 45, ICCID: "8901"},
		},
		{
			name:  "reported IPv4 and IPv6 instead of reportedIpAddress",
			event: jamf.EventComputerInventoryCompleted,
			body:  `{"reportedIpV4Address":"192.0.2.7","reportedIpV6Address":"2001:db8::7"}`,
			want:  jamf.Computer{ReportedIPv4Address: "192.0.2.7", ReportedIPv6Address: "2001:db8::7"},
		},
		{
			name:  "management ID as a number",
			event: jamf.EventComputerAdded,
			body:  `{"managementId":1322}`,
			want:  jamf.Computer{ManagementID: "1322"},
		},
		{
			name:  "push sent with string management ID",
			event: jamf.EventPushSent,
			body:  `{"managementId":"8f5c2d9e-1b3a","type":"PushSent"}`,
			want:  jamf.PushSent{ManagementID: "8f5c2d9e-1b3a", Type: "PushSent"},
		},
		{
			name:  "legacy push sent with jssid",
			event: jamf.EventPushSent,
			body:  `{"jssid":13,"type":"PushSent"}`,
			want:  jamf.PushSent{JSSID: 13, Type: "PushSent"},
		},
		{
			name:  "numbers and booleans as strings",
			event: jamf.EventComputerPatchPolicyCompleted,
			body:  `{"computer":{"jssID":"1322"},"patchPolicyId":"42","softwareTitleId":" 7 ","successful":"false"}`,
			want:  jamf.ComputerPatchPolicyCompleted{Computer: jamf.Computer{JSSID: 1322}, PatchPolicyID: 42, SoftwareTitleID: 7, Successful: ptr(false)},
		},
		{
			name:  "strings as numbers",
			event: jamf.EventComputerAdded,
			body:  `{"deviceName":12345,"serialNumber":1.5,"osVersion":true}`,
			want:  jamf.Computer{DeviceName: "12345", SerialNumber: "1.5", OSVersion: "true"},
		},
		{
			name:  "event actions as one string",
			event: jamf.EventComputerPatchPolicyCompleted,
			body:  `{"eventActions":{"action":"install"}}`,
			want:  jamf.ComputerPatchPolicyCompleted{EventActions: []string{"install"}},
		},
		{
			name:  "event actions as a bare list",
			event: jamf.EventComputerPatchPolicyCompleted,
			body:  `{"eventActions":["install","notify"]}`,
			want:  jamf.ComputerPatchPolicyCompleted{EventActions: []string{"install", "notify"}},
		},
		{
			name:  "legacy single report URL",
			event: jamf.EventPatchSoftwareTitleUpdated,
			body:  `{"jssID":7,"reportUrl":"https://jamf.example.com/patch.html?id=7&o=r","lastUpdate":1732876500}`,
			want: jamf.PatchSoftwareTitleUpdated{
				JSSID:      7,
				ReportURLs: []string{"https://jamf.example.com/patch.html?id=7&o=r"},
				LastUpdate: time.Unix(1732876500, 0).UTC(),
			},
		},
		{
			name:  "smart group with jssID, string IDs and a single ID",
			event: jamf.EventSmartGroupComputerMembershipChange,
			body:  `{"jssID":"56","name":"G","groupAddedDevicesIds":["1","x",2,null,3.0],"groupRemovedDevicesIds":988}`,
			want:  jamf.SmartGroupComputerMembershipChange{GroupID: 56, Name: "G", AddedIDs: []int64{1, 2, 3}, RemovedIDs: []int64{988}},
		},
		{
			name:  "smart computer group with device objects",
			event: jamf.EventSmartGroupComputerMembershipChange,
			body:  `{"jssid":1,"groupAddedDevices":[{"jssID":5,"deviceName":"a"},"junk",{"jssID":6}]}`,
			want: jamf.SmartGroupComputerMembershipChange{
				GroupID:      1,
				AddedDevices: []jamf.Computer{{JSSID: 5, DeviceName: "a"}, {JSSID: 6}},
			},
		},
		{
			name:  "mobile command with command details",
			event: jamf.EventMobileDeviceCommandCompleted,
			body:  `{"jssID":215,"mdmCommand":"DeviceLock","mdmCommandUUID":"u-1","status":"Acknowledged"}`,
			want:  jamf.MobileDevice{JSSID: 215, MDMCommand: "DeviceLock", MDMCommandUUID: "u-1", MDMCommandStatus: "Acknowledged"},
		},
		{
			name:  "device added to DEP with date in seconds",
			event: jamf.EventDeviceAddedToDEP,
			body:  `{"deviceAssignedDate":1732867200,"serialNumber":"S"}`,
			want:  jamf.DeviceAddedToDEP{DeviceAssignedDate: time.Unix(1732867200, 0).UTC(), SerialNumber: "S"},
		},
		{
			name:  "device added to DEP with an RFC 3339 date",
			event: jamf.EventDeviceAddedToDEP,
			body:  `{"deviceAssignedDate":"2024-11-29T08:00:00Z"}`,
			want:  jamf.DeviceAddedToDEP{DeviceAssignedDate: time.Date(2024, 11, 29, 8, 0, 0, 0, time.UTC)},
		},
		{
			name:  "SCEP target user password is not decoded",
			event: jamf.EventSCEPChallenge,
			body:  `{"targetUser":{"username":"u","password":"hunter2","realName":"R"},"payloadTypes":"com.apple.security.scep"}`,
			want:  jamf.SCEPChallenge{TargetUser: jamf.SCEPUser{Username: "u", RealName: "R"}, PayloadTypes: []string{"com.apple.security.scep"}},
		},
		{
			name:  "nulls and wrong types leave zero values",
			event: jamf.EventComputerPolicyFinished,
			body:  `{"computer":{"jssID":null,"deviceName":{},"serialNumber":[],"model":null},"policyId":{"a":1},"successful":"maybe"}`,
			want:  jamf.ComputerPolicyFinished{},
		},
		{
			name:  "out of range numbers leave zero values",
			event: jamf.EventRestAPIOperation,
			body:  `{"objectID":1e300,"operationSuccessful":null}`,
			want:  jamf.RestAPIOperation{},
		},
		{
			name:  "mobile device nested under mobileDevice",
			event: jamf.EventMobileDeviceEnrolled,
			body:  `{"mobileDevice":{"jssID":7}}`,
			want:  jamf.MobileDevice{JSSID: 7},
		},
		{
			name:  "rate limited keeps every field",
			event: jamf.EventDeviceRateLimited,
			body:  `{"deviceName":"d","jssID":3,"extra":{"n":1}}`,
			want: jamf.DeviceRateLimited{JSSID: 3, DeviceName: "d", Fields: map[string]any{
				"deviceName": "d", "jssID": json.Number("3"), "extra": map[string]any{"n": json.Number("1")},
			}},
		},
		{
			name:  "unknown event",
			event: "ComputerExploded",
			body:  `{"a":{"b":[1,"two"]}}`,
			want:  jamf.Unknown{Fields: map[string]any{"a": map[string]any{"b": []any{json.Number("1"), "two"}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := jamf.Envelope{Webhook: jamf.Webhook{Event: tt.event}, Event: json.RawMessage(tt.body)}
			got, err := jamf.Decode(env)
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decode() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestComputerReportedIPs(t *testing.T) {
	tests := []struct {
		name     string
		computer jamf.Computer
		want     []string
	}{
		{name: "none", computer: jamf.Computer{}},
		{name: "legacy field", computer: jamf.Computer{ReportedIPAddress: "192.0.2.1"}, want: []string{"192.0.2.1"}},
		{name: "v4 and v6", computer: jamf.Computer{ReportedIPv4Address: "192.0.2.1", ReportedIPv6Address: "2001:db8::1"}, want: []string{"192.0.2.1", "2001:db8::1"}},
		{name: "duplicates dropped", computer: jamf.Computer{ReportedIPAddress: "192.0.2.1", ReportedIPv4Address: "192.0.2.1"}, want: []string{"192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.computer.ReportedIPs()); diff != "" {
				t.Errorf("ReportedIPs() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMobileDeviceOS(t *testing.T) {
	if got := (jamf.MobileDevice{Version: "17.0"}).OS(); got != "17.0" {
		t.Errorf("OS() = %q, want the version field", got)
	}
	if got := (jamf.MobileDevice{Version: "17.0", OSVersion: "18.1"}).OS(); got != "18.1" {
		t.Errorf("OS() = %q, want osVersion first", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		event string
	}{
		{name: "empty", event: ""},
		{name: "array", event: `[1]`},
		{name: "string", event: `"x"`},
		{name: "invalid", event: `{"a":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := jamf.Envelope{Webhook: jamf.Webhook{Event: jamf.EventComputerAdded}, Event: json.RawMessage(tt.event)}
			_, err := jamf.Decode(env)
			var fe *jamf.FieldError
			if !errors.As(err, &fe) || fe.Field != "event" {
				t.Errorf("Decode() error = %v, want a *FieldError for event", err)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"ComputerCheckIn", "ComputerPolicyFinished", "SmartGroupMobileDeviceMembershipChange"} {
		env, err := jamf.Parse(readSample(b, name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(env.Event)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jamf.Decode(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
