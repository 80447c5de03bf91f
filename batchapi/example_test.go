package batchapi_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

func Example() {
	srv := emulator.NewServer(emulator.Options{AccountID: testAccount, APIToken: testAPIToken})
	defer srv.Close()

	c, err := batchapi.New(batchapi.Config{
		AccountID:   testAccount,
		APIToken:    batchapi.Secret(testAPIToken),
		APIURL:      srv.APIURL(), // plain http is accepted only because this is loopback
		BatchURL:    srv.BatchURL(),
		BatchTokens: 2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4)))
	req := batchapi.UploadRequest{
		ID:       "shop/boots.png",
		Content:  bytes.NewReader(buf.Bytes()),
		Size:     int64(buf.Len()),
		Metadata: map[string]any{"path": "shop/boots.png"},
	}
	ctx := context.Background()
	img, err := c.Upload(ctx, req)
	fmt.Println(img.ID, err)

	_, err = c.Upload(ctx, req)
	fmt.Println("already exists:", batchapi.IsAlreadyExists(err))

	err = c.Delete(ctx, "shop/boots.png")
	fmt.Println("deleted:", err == nil)
	_, err = c.Get(ctx, "shop/boots.png")
	fmt.Println(err)
	// Output:
	// shop/boots.png <nil>
	// already exists: true
	// deleted: true
	// batchapi: get "shop/boots.png": 404 Not Found: 5404 Image not found
}
