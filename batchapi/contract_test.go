package batchapi_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"os"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// runContract is the behaviour every Images API the client talks to must show, checked only
// through the client: the emulator and, when credentials are given, a real account.
func runContract(t *testing.T, c *batchapi.Client) {
	ctx := t.Context()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	run := hex.EncodeToString(rnd[:])
	creator := "cfimgsync-contract-" + run
	id := "cfimgsync-contract/" + run + "/a b.png"

	img := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	for i := range 256 {
		img.Set(i%16, i/16, color.NRGBA{R: rnd[0], G: byte(i), B: rnd[1], A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	req := batchapi.UploadRequest{
		ID: id, Content: bytes.NewReader(buf.Bytes()), Size: int64(buf.Len()),
		Metadata: map[string]any{"run": run}, Creator: creator,
	}
	up, err := c.Upload(ctx, req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, id) })
	if up.ID != id || up.Meta["run"] != run || up.Creator != creator {
		t.Errorf("upload returned %+v", up)
	}
	if _, err := c.Upload(ctx, req); !batchapi.IsAlreadyExists(err) {
		t.Errorf("second upload: %v, want already exists", err)
	}
	got, err := c.Get(ctx, id)
	if err != nil || got.ID != id || got.Meta["run"] != run {
		t.Errorf("get: %+v, %v", got, err)
	}
	upd, err := c.Update(ctx, id, batchapi.UpdateRequest{Metadata: map[string]any{"run": run, "v": 2}})
	if err != nil || upd.Meta["v"] != float64(2) {
		t.Errorf("update: %+v, %v", upd, err)
	}
	found := false
	for im, err := range c.List(ctx, batchapi.ListOptions{Creator: &creator, PerPage: 10}) {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		found = found || im.ID == id
	}
	if !found {
		t.Errorf("list by creator did not return %q", id)
	}
	if err := c.Delete(ctx, id); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := c.Get(ctx, id); !batchapi.IsNotFound(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
}

func TestContractEmulator(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	runContract(t, e.client)
}

// TestContractRealAccount runs the contract against Cloudflare when
// CFIMGSYNC_TEST_ACCOUNT_ID and CFIMGSYNC_TEST_API_TOKEN are set (a throwaway account: it
// uploads and deletes one image under "cfimgsync-contract/").
func TestContractRealAccount(t *testing.T) {
	account, token := os.Getenv("CFIMGSYNC_TEST_ACCOUNT_ID"), os.Getenv("CFIMGSYNC_TEST_API_TOKEN")
	if account == "" || token == "" {
		t.Skip("set CFIMGSYNC_TEST_ACCOUNT_ID and CFIMGSYNC_TEST_API_TOKEN to run against a real account")
	}
	c, err := batchapi.New(batchapi.Config{AccountID: account, APIToken: batchapi.Secret(token), MaxRetryWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runContract(t, c)
}
