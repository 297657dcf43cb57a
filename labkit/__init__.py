"""labkit: the tooling of the week "Deploying an ML service" (doctor, images, release, grading)."""
