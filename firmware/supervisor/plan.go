package supervisor

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/secwire/secwire/firmware/config"
)

// Action is what an update does to one link.
type Action string

const (
	ActionStart   Action = "start"    // a new link
	ActionStop    Action = "stop"     // a link that is gone
	ActionRestart Action = "restart"  // new datapath and CA: the plaintext port bounces
	ActionInPlace Action = "in place" // the running link absorbs the change
)

// Change is one link's part of an update.
type Change struct {
	Link   string
	Action Action
	// Fields are the config paths that differ (links[i].cipher ..., index
	// into the new config); for a restart, only those that need it.
	Fields []string
}

// inPlace reports whether a running link takes a change of the setting
// (its JSON path below the link) without a restart: its SecY, datapath
// and CA stay.
func inPlace(field string) bool {
	switch field {
	}
	return false
}

// Plan says what changing the running config prev into next does to each
// link, in the order of next's links, then the stopped ones. Links that
// stay as they are do not appear; system settings (hostname, users, SSH,
// management) never touch a link.
func Plan(prev, next *config.Config) []Change {
	var plan []Change
	for i := range next.Links {
		nl := &next.Links[i]
		ol := prev.Link(nl.Name)
		if ol == nil {
			plan = append(plan, Change{Link: nl.Name, Action: ActionStart})
			continue
		}
		var restart, soft []string
		for _, f := range linkDiff(*ol, *nl, "") {
			p := fmt.Sprintf("links[%d].%s", i, f)
			if inPlace(f) {
				soft = append(soft, p)
			} else {
				restart = append(restart, p)
			}
		}
		switch {
		case len(restart) > 0:
			plan = append(plan, Change{Link: nl.Name, Action: ActionRestart, Fields: restart})
		case len(soft) > 0:
			plan = append(plan, Change{Link: nl.Name, Action: ActionInPlace, Fields: soft})
		}
	}
	for _, ol := range prev.Links {
		if next.Link(ol.Name) == nil {
			plan = append(plan, Change{Link: ol.Name, Action: ActionStop})
		}
	}
	return plan
}

// linkDiff lists the JSON paths of the fields that differ between two
// values of the same struct type, descending into the mka section.
func linkDiff(a, b any, prefix string) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := 0; i < va.NumField(); i++ {
		name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			continue
		}
		if name == "mka" && !fa.IsNil() && !fb.IsNil() {
			out = append(out, linkDiff(fa.Elem().Interface(), fb.Elem().Interface(), prefix+"mka.")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// reconfigure applies in-place changes to a running link.
func (l *link) reconfigure(nl config.Link) error {
	if len(linkDiff(l.cfg, nl, "")) == 0 {
		return nil
	}
	return fmt.Errorf("cannot change %s in place", strings.Join(linkDiff(l.cfg, nl, ""), ", "))
}
