package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// capReader bounds what a response may make the client read: the whole body (a page of the
// requested size can only plausibly be so big) and each item of a page (reset before each item),
// so memory follows what is decoded, not what the upstream sends.
type capReader struct {
	r                 io.Reader
	total, totalMax   int64
	item, itemMax     int64
	maxItems          int // items a page may hold (0: any)
	tooLarge, readErr error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.tooLarge != nil {
		return 0, c.tooLarge
	}
	room := min(c.totalMax-c.total, c.itemMax-c.item)
	if room <= 0 {
		if c.total >= c.totalMax {
			c.tooLarge = fmt.Errorf("%w (over %d bytes for this request)", ErrResponseTooLarge, c.totalMax)
		} else {
			c.tooLarge = fmt.Errorf("%w (an item over %d bytes)", ErrResponseTooLarge, c.itemMax)
		}
		return 0, c.tooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.total += int64(n)
	c.item += int64(n)
	if err != nil && err != io.EOF {
		c.readErr = err
	}
	return n, err
}

// nextItem starts the budget of a new item.
func (c *capReader) nextItem() { c.item = 0 }

// decodeValue decodes one JSON value (an object that is not a page) from the body.
func decodeValue(cr *capReader, out any) error {
	dec := json.NewDecoder(cr)
	if err := dec.Decode(out); err != nil {
		return err
	}
	return expectEnd(dec)
}

func expectEnd(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errors.New("data after the JSON value")
		}
		return err
	}
	return nil
}

// decodePage reads a SeekPage item by item: the decoder holds one item at a time, however long
// the page. Unknown keys are skipped; "data": null is an empty page.
func decodePage[T any](cr *capReader, page *Page[T]) error {
	dec := json.NewDecoder(cr)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		cr.nextItem()
		switch key {
		case "data":
			if err := decodeItems(dec, cr, page); err != nil {
				return err
			}
		case "next":
			page.Next = nil
			if err := dec.Decode(&page.Next); err != nil {
				return fmt.Errorf("next: %w", err)
			}
		case "previous":
			page.Previous = nil
			if err := dec.Decode(&page.Previous); err != nil {
				return fmt.Errorf("previous: %w", err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	return expectEnd(dec)
}

func decodeItems[T any](dec *json.Decoder, cr *capReader, page *Page[T]) error {
	page.Data = page.Data[:0]
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // null
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("data is %v, not an array", tok)
	}
	for dec.More() {
		if cr.maxItems > 0 && len(page.Data) >= cr.maxItems {
			cr.tooLarge = fmt.Errorf("%w (more than %d items in one page)", ErrResponseTooLarge, cr.maxItems)
			return cr.tooLarge
		}
		cr.nextItem()
		var item T
		if err := dec.Decode(&item); err != nil {
			return fmt.Errorf("an item of data: %w", err) // no index: one failure keeps one message
		}
		page.Data = append(page.Data, item)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, got %v", want, tok)
	}
	return nil
}

// MaxPlausibleTasks bounds a run's task (step) count: larger values are treated as unknown.
const MaxPlausibleTasks = 1e7

// requiredRunFields are the fields without which a run cannot be accounted for.
var requiredRunFields = map[string]bool{"id": true, "created": true, "status": true}

// UnmarshalJSON decodes a run tolerantly: a field of the wrong type or out of range (a
// "stepsCount" of 1e400) is dropped and named in Dropped, and the run is kept; a run whose id,
// created time or status cannot be decoded is kept with Invalid set, so one bad row does not
// fail its page. Only malformed JSON is an error.
func (r *FlowRun) UnmarshalJSON(b []byte) error {
	type plain FlowRun
	var p plain
	err := json.Unmarshal(b, &p)
	if err == nil {
		*r = FlowRun(p)
		return nil
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil {
		*r = FlowRun{Invalid: "not a JSON object"}
		return nil
	}
	p = plain{}
	var invalid string
	var dropped []string
	for k, v := range fields {
		one, _ := json.Marshal(map[string]json.RawMessage{k: v})
		if err := json.Unmarshal(one, &p); err != nil {
			if requiredRunFields[k] {
				invalid = fmt.Sprintf("field %q: %v", k, err)
			} else {
				dropped = append(dropped, k)
			}
			// The field may be half set: clear the optional ones that can be.
			switch k {
			case "stepsCount":
				p.StepsCount = nil
			case "duration":
				p.Duration = nil
			case "tasks":
				p.Tasks = nil
			case "failedStep":
				p.FailedStep = nil
			}
		}
	}
	*r = FlowRun(p)
	r.Invalid, r.Dropped = invalid, dropped
	return nil
}
