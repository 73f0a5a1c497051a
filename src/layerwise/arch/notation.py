"""The architecture notation in a few lines: the epilog of ``layerwise train --help`` (and of anything
that takes an architecture string)."""

NOTATION_HELP = """\
architecture notation (--arch, one string; names in any case; spaces allowed):
  MLP: the homework's "[(140,ReLU),(10,Linear)]" or the short "140:relu,10" (a layer without
  activation is linear); activations: linear, relu, sigmoid, tanh, softmax.
  CNN: comma-separated items inside [...]:
    (units,Activation)            Dense + activation, as in the homework (also units:act, dense(units,act))
    conv(F,K[,stride=S][,pad=P])  Conv2D: F filters of KxK; P an integer, same or valid (default 0);
                                  K, S, P may be pairs such as 3x5 (height x width)
    maxpool(K[,stride=S])         max pooling (stride defaults to K); avgpool(K[,stride=S]) likewise
    flatten                       images -> rows (put in automatically before the first Dense layer
                                  that follows image layers; summary shows it as a Flatten layer)
    dropout(R)                    inverted dropout of rate R in [0, 1) while training
    batchnorm                     batch normalisation (over channels for images)
    relu, tanh, sigmoid, ...      an activation on its own
  e.g. LeNet-5: "[conv(6,5,pad=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),(120,ReLU),(84,ReLU),(10,Linear)]"
  A network with conv/pool/flatten items gets the images as (n, 1, 28, 28), an MLP flat rows of 784.
  The last layer must have one unit per class (10) and should be Linear (logits);
  every network starts with Rescale(1/255), so it takes raw 0..255 pixels."""
