package pipeline

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestDecodeRefusesFieldsNoAttributeCanReach(t *testing.T) {
	v, err := NewValues(&xformKind{}, map[string]cty.Value{"input": cty.StringVal("in"), "epochs": cty.NumberIntVal(3)})
	if err != nil {
		t.Fatal(err)
	}
	type knobs struct {
		Epochs int `cty:"epochs"`
	}
	var good struct {
		Input  string `cty:"input"`
		Suffix string `cty:"suffix"`
		hidden int
	}
	if err := v.Decode(&good); err != nil || good.Input != "in" {
		t.Fatalf("decode: %+v %v", good, err)
	}
	var bad struct {
		Input string `cty:"input"`
		knobs
		Extra knobs
	}
	if err := v.Decode(&bad); err == nil {
		t.Fatal("a struct with an untagged exported field decoded without error")
	}
	// The separately decoded part gets its values.
	var k knobs
	if err := v.Decode(&k); err != nil || k.Epochs != 3 {
		t.Fatalf("decode into knobs: %+v %v", k, err)
	}
}
