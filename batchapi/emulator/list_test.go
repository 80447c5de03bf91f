package emulator

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"
)

type listPage struct {
	Images            []testImage `json:"images"`
	ContinuationToken *string     `json:"continuation_token"`
}

func listOnce(t testing.TB, c *client, query string) listPage {
	t.Helper()
	r := c.do("GET", "v2?"+query, nil, "")
	r.want(t, 200, 0)
	var p listPage
	if err := json.Unmarshal(r.env.Result, &p); err != nil {
		t.Fatalf("list result %s: %v", r.env.Result, err)
	}
	// The last page says so with an explicit null.
	var raw map[string]json.RawMessage
	json.Unmarshal(r.env.Result, &raw)
	if _, ok := raw["continuation_token"]; !ok {
		t.Fatalf("list result lacks continuation_token: %s", r.env.Result)
	}
	return p
}

// listAll follows continuation tokens and returns the IDs in order.
func listAll(t testing.TB, c *client, query string) []string {
	t.Helper()
	var ids []string
	tok := ""
	for range 1000 {
		q := query
		if tok != "" {
			q += "&continuation_token=" + url.QueryEscape(tok)
		}
		p := listOnce(t, c, q)
		for _, img := range p.Images {
			ids = append(ids, img.ID)
		}
		if p.ContinuationToken == nil {
			return ids
		}
		tok = *p.ContinuationToken
	}
	t.Fatal("list does not end")
	return nil
}

func TestListPagingAndOrder(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now})
	c := s.global(t)
	content := grayPNG(t, 2, 2)
	var want []string
	for i := range 35 {
		id := fmt.Sprintf("img/%02d.png", i)
		fields := []field{fileField("x.png", content), {name: "id", value: id}}
		switch i % 3 {
		case 0:
			fields = append(fields, field{name: "creator", value: "alice"})
		case 1:
			fields = append(fields, field{name: "creator", value: "bob"})
		}
		c.upload(fields...).want(t, 200, 0)
		want = append(want, id)
		if i%2 == 0 { // some share an upload time; the sequence breaks the tie
			clock.Advance(time.Millisecond)
		}
	}
	body, ct := multipartForm(t, field{name: "id", value: "draft.png"})
	c.do("POST", "v2/direct_upload", body, ct).want(t, 200, 0)

	if got := listAll(t, c, "per_page=10&sort_order=asc"); !slices.Equal(got, want) {
		t.Errorf("asc = %v", got)
	}
	desc := slices.Clone(want)
	slices.Reverse(desc)
	if got := listAll(t, c, "per_page=10"); !slices.Equal(got, desc) {
		t.Errorf("default (desc) = %v", got)
	}
	if got := listAll(t, c, "per_page=10&sort_order=desc"); !slices.Equal(got, desc) {
		t.Errorf("desc = %v", got)
	}
	p := listOnce(t, c, "per_page=10")
	if len(p.Images) != 10 || p.ContinuationToken == nil {
		t.Errorf("first page: %d images, token %v", len(p.Images), p.ContinuationToken)
	}
	p = listOnce(t, c, "")
	if len(p.Images) != 35 || p.ContinuationToken != nil {
		t.Errorf("default page: %d images, token %v", len(p.Images), p.ContinuationToken)
	}
	// Exactly one page's worth: no token after it.
	p = listOnce(t, c, "per_page=35")
	if len(p.Images) != 35 || p.ContinuationToken != nil {
		t.Errorf("exact page: %d images, token %v", len(p.Images), p.ContinuationToken)
	}

	// creator filter; an empty creator means "none".
	for _, tt := range []struct {
		query string
		mod   int
	}{{"creator=alice", 0}, {"creator=bob", 1}, {"creator=", 2}} {
		got := listAll(t, c, "per_page=10&sort_order=asc&"+tt.query)
		var w []string
		for i, id := range want {
			if i%3 == tt.mod {
				w = append(w, id)
			}
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: %v, want %v", tt.query, got, w)
		}
	}
	if got := listAll(t, c, "creator=nobody"); len(got) != 0 {
		t.Errorf("unknown creator: %v", got)
	}

	for _, q := range []string{"per_page=9", "per_page=10001", "per_page=x", "sort_order=up",
		"continuation_token=garbage", "meta.a[eq]=1"} {
		c.do("GET", "v2?"+q, nil, "").want(t, 400, 5400)
	}
}

func TestListMaxPerPageOption(t *testing.T) {
	s := newServer(t, Options{MaxPerPage: 1000})
	c := s.global(t)
	c.do("GET", "v2?per_page=1000", nil, "").want(t, 200, 0)
	c.do("GET", "v2?per_page=1001", nil, "").want(t, 400, 5400)
}

// Images added and deleted between pages: every image present throughout is seen exactly
// once, deleted ones are not seen after deletion, and nothing repeats.
func TestListStableUnderChanges(t *testing.T) {
	for _, order := range []string{"asc", "desc"} {
		t.Run(order, func(t *testing.T) {
			clock := newClock()
			s := newServer(t, Options{Now: clock.Now})
			c := s.global(t)
			content := grayPNG(t, 1, 1)
			upload := func(id string) {
				c.upload(fileField("x.png", content), field{name: "id", value: id}).want(t, 200, 0)
				clock.Advance(time.Millisecond)
			}
			for i := range 50 {
				upload(fmt.Sprintf("orig/%02d.png", i))
			}
			seen := map[string]int{}
			deleted := map[string]bool{}
			tok := ""
			for page := 0; ; page++ {
				q := "per_page=10&sort_order=" + order
				if tok != "" {
					q += "&continuation_token=" + url.QueryEscape(tok)
				}
				p := listOnce(t, c, q)
				for _, img := range p.Images {
					seen[img.ID]++
					if deleted[img.ID] {
						t.Errorf("deleted %s listed", img.ID)
					}
				}
				if p.ContinuationToken == nil {
					break
				}
				tok = *p.ContinuationToken
				// Between pages: delete one seen and one unseen image, add two new ones.
				for _, id := range []string{fmt.Sprintf("orig/%02d.png", page*5), fmt.Sprintf("orig/%02d.png", 49-page*5)} {
					if c.do("DELETE", "v1/"+escape(id), nil, "").status == 200 {
						deleted[id] = true
					}
				}
				upload(fmt.Sprintf("new/%d-a.png", page))
				upload(fmt.Sprintf("new/%d-b.png", page))
			}
			for i := range 50 {
				id := fmt.Sprintf("orig/%02d.png", i)
				if n := seen[id]; n > 1 || (n == 0 && !deleted[id]) {
					t.Errorf("%s seen %d times (deleted %v)", id, n, deleted[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s seen %d times", id, n)
				}
			}
		})
	}
}
