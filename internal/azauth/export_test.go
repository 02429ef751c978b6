package azauth

import "context"

// Classify is classify outside any request, for table tests.
func Classify(err error) error { return classify(context.Background(), err) }
