package stages

// What stage outputs hold (pipeline.OutputTyper), and so which attributes they can be given
// to (pipeline.Attribute.Accepts). The names appear in validation messages.
const (
	typeImages     = "image set"     // a folder with a manifest.json: split's train, val, test; augment's output
	typeModel      = "trained model" // train's saved_model
	typeEvaluation = "evaluation"    // evaluate's evaluation
	typeReport     = "report"        // split's and augment's report
	typeDecision   = "decision"      // select's decision
)
