package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

func ExampleNewServer() {
	s := emulator.NewServer(emulator.Options{})
	defer s.Close()

	var img bytes.Buffer
	png.Encode(&img, image.NewGray(image.Rect(0, 0, 4, 4)))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("id", "shop/boots.png")
	fw, _ := mw.CreateFormFile("file", "boots.png")
	fw.Write(img.Bytes())
	mw.Close()

	req, _ := http.NewRequest("POST", s.APIURL()+"/accounts/023e105f4ecef8ad9ca31a8372d0c353/images/v1", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer emulator-api-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var env struct {
		Success bool `json:"success"`
		Result  struct {
			ID string `json:"id"`
		} `json:"result"`
	}
	json.NewDecoder(res.Body).Decode(&env)
	fmt.Println(res.StatusCode, env.Success, env.Result.ID)

	stored, _ := s.Emulator.Image("shop/boots.png")
	fmt.Println(stored.Format, stored.Width, stored.Height, s.Emulator.WriteCalls())
	// Output:
	// 200 true shop/boots.png
	// png 4 4 1
}
