package graphs

// tinySpecs returns each architecture at a size that trains in seconds on two cores.
func tinySpecs() []Spec {
	return []Spec{
		{Architecture: "cnn", CNN: &CNN{Channels: []int64{8, 16}, Dropout: 0.1, Pool: 2, Dense: 32, DenseDropout: 0.1}},
		{Architecture: "vgg19", VGG19: &VGG19{Width: 0.125, Classifier: 32, Pool: 1, BatchNorm: true, Dropout: 0.1}},
		{Architecture: "vit", ViT: &ViT{Patch: 4, Dim: 16, Depth: 2, Heads: 2, MLPRatio: 2, Pool: "cls", Dropout: 0.1}},
	}
}
