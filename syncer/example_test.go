package syncer_test

import (
	"fmt"

	"github.com/cfimgsync/cfimgsync/syncer"
)

func ExampleDeliveryURL() {
	fmt.Println(syncer.DeliveryURL("https://imagedelivery.net/Vi7wi5KSItxGFsWRG2Us6Q", "shop/50% off #1?.png", "public"))
	// Output: https://imagedelivery.net/Vi7wi5KSItxGFsWRG2Us6Q/shop/50%25%20off%20%231%3F.png/public
}
