// Package graphs builds, trains and exports image classifiers through TensorFlow's C API
// (github.com/wamuir/graft).
//
// Layer blocks (Conv2D, Dense, BatchNorm, LayerNorm, Dropout, GELU, MultiHeadSelfAttention,
// PatchEmbed, ...) are functions of a Ctx and their inputs. Three architectures implement
// Network: CNN (the original system's), VGG19 and ViT, each at any input size, channel count
// (1 or 3) and class count. A Trainer owns a training graph (softmax cross-entropy on one-hot
// labels, gradients from Graph.AddGradients, Adam or AdamW with the learning rate and
// β-powers fed per step) plus an inference forward pass over the same variables, and exports
// the latter as a SavedModel that TensorFlow's C++ and Python loaders both read. LoadModel
// loads such a folder for prediction and makes one prediction on a blank image first, so a
// damaged folder (its weights deleted) fails to load; CheckModel does only that check.
//
// Only ops whose gradients TensorFlow's C++ registry has are used on gradient paths: dense
// (not sparse) cross-entropy, FusedBatchNormV3, exact GELU from Erf, layer norm from
// Mean/SquaredDifference/Rsqrt, and Softmax on a 2-D view in attention.
//
// The package knows nothing of pipeline files, stages or image files; callers feed batches
// of float32 pixels.
package graphs
