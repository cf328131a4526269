"""What any trained model could use: losses, negative samplers, the epoch loop, a fit's
state and checkpoints, validation with early stopping, sparse gradients and the pieces of
data-parallel training. TripletRecommender's own training is :mod:`tripletrec.models.triplet`."""
