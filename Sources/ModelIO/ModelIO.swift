// ModelIO module
