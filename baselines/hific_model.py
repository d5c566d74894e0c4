"""The HiFiC architecture with seeded random weights, exported as the metagraph ``models/tfci.py`` runs.

tensorflow-compression publishes HiFiC only as trained metagraphs (``hific-lo/-mi/-hi``), made with its TF1 code
in ``models/hific`` (``archs.py``: ``Encoder``, ``Decoder``, ``Hyperprior``, ``ChannelNorm``). This module builds
that network again in TensorFlow 2 with the layers ``archs.py`` uses, gives it seeded random weights, and writes
a ``MetaGraphDef`` with a ``sender`` signature (uint8 image -> bitstream tensors) and a ``receiver`` signature
(bitstream tensors -> image), the interface of the released files, so the adapter runs the two through one code
path. Rates come from tfc's range coder on the random network's latents.

What differs from the released files, and why:

* the entropy models are tfc 2.x's (``ContinuousBatchedEntropyModel`` with a ``NoisyDeepFactorized`` prior for
  the hyper-latents, ``LocationScaleIndexedEntropyModel`` with ``NoisyNormal`` and ``archs.py``'s 64-level scale
  table for the latents): tfc 2.14 no longer has the TF1 ``EntropyBottleneck``/``GaussianConditional`` the
  released graphs were built with. Both code the same quantities with the same kind of range coder;
* the weights are random (nothing trained), so rates and reconstructions say nothing about HiFiC's quality;
* ``size="tiny"`` (tests, fuzzing) keeps every layer kind and the data flow but narrows the widths and uses one
  residual block (see :data:`SIZES`); ``size="full"`` has ``archs.py``'s widths (60 base filters, 220-channel
  bottleneck, 320 hyperprior filters, 9 residual blocks at 960 channels).

This module needs only TensorFlow, tensorflow-compression and numpy, so it runs in a separate TensorFlow venv.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64  # archs.py
#: archs.py's widths ("full") and a narrow configuration with the same layers ("tiny").
SIZES: dict[str, dict[str, int]] = {
    "full": {"base": 60, "bottleneck": 220, "hyper": 320, "blocks": 9},
    "tiny": {"base": 4, "bottleneck": 8, "hyper": 8, "blocks": 1},
}
NUM_DOWN = 4  # archs.Encoder(num_down=4): the image is padded to a multiple of 16 (model._pad)
#: the signature keys; sorted order is the order tfci.py packs and unpacks the tensors in
SENDER_OUTPUTS = ("a_latent_string", "b_hyper_string", "c_image_shape", "d_latent_shape", "e_hyper_shape")


def _layers(tf, tfc, size: dict[str, int]):
    """The transforms of archs.py, as Keras layers."""

    class ChannelNorm(tf.keras.layers.Layer):
        """archs.ChannelNorm: normalise over channels with the unbiased variance, then scale and shift."""

        def build(self, input_shape):
            self.gamma = self.add_weight(name="gamma", shape=(input_shape[-1],), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(input_shape[-1],), initializer="zeros")

        def call(self, x):
            mean = tf.reduce_mean(x, [-1], keepdims=True)
            var = tf.reduce_sum(tf.math.squared_difference(x, mean), [-1], keepdims=True)
            var /= tf.cast(tf.shape(x)[-1], tf.float32) - 1
            return tf.nn.batch_normalization(x, mean, var, self.beta, self.gamma, 1e-3)

    class ResidualBlock(tf.keras.layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.block = tf.keras.Sequential([
                tf.keras.layers.Conv2D(filters, 3, padding="same"), ChannelNorm(), tf.keras.layers.ReLU(),
                tf.keras.layers.Conv2D(filters, 3, padding="same"), ChannelNorm()])

        def call(self, x):
            return x + self.block(x)

    class Decoder(tf.keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            top = size["base"] * 2 ** NUM_DOWN
            self.head = tf.keras.Sequential([ChannelNorm(), tf.keras.layers.Conv2D(top, 3, padding="same"),
                                             ChannelNorm()])
            self.blocks = tf.keras.Sequential([ResidualBlock(top) for _ in range(size["blocks"])])
            tail = []
            for scale in reversed(range(NUM_DOWN)):
                tail += [tf.keras.layers.Conv2DTranspose(size["base"] * 2 ** scale, 3, strides=2, padding="same"),
                         ChannelNorm(), tf.keras.layers.ReLU()]
            self.tail = tf.keras.Sequential(tail + [tf.keras.layers.Conv2D(3, 7, padding="same")])

        def call(self, x):
            head = self.head(x)
            return self.tail(self.blocks(head) + head)

    encoder = [tf.keras.layers.Conv2D(size["base"], 7, padding="same"), ChannelNorm(), tf.keras.layers.ReLU()]
    for i in range(NUM_DOWN):
        encoder += [tf.keras.layers.Conv2D(size["base"] * 2 ** (i + 1), 3, strides=2, padding="same"),
                    ChannelNorm(), tf.keras.layers.ReLU()]
    encoder.append(tf.keras.layers.Conv2D(size["bottleneck"], 3, padding="same"))

    def conv(filters, kernel, down=1, up=1, relu=True):
        return tfc.SignalConv2D(filters, (kernel, kernel), corr=up == 1, strides_down=down, strides_up=up,
                                padding="same_zeros", use_bias=True, activation=tf.nn.relu if relu else None,
                                kernel_parameter="variable" if up > 1 else "rdft")

    hyper_analysis = tf.keras.Sequential([conv(size["hyper"], 3), conv(size["hyper"], 5, down=2),
                                          conv(size["hyper"], 5, down=2, relu=False)])

    def synthesis():
        return tf.keras.Sequential([conv(size["hyper"], 5, up=2), conv(size["hyper"], 5, up=2),
                                    tfc.SignalConv2D(size["bottleneck"], (3, 3), corr=False, padding="same_zeros",
                                                     use_bias=True, kernel_parameter="variable")])

    return tf.keras.Sequential(encoder), Decoder(), hyper_analysis, synthesis(), synthesis()


def build_metagraph(seed: int, size: str = "tiny") -> bytes:
    """A serialized ``MetaGraphDef`` of the HiFiC architecture with weights drawn from ``seed``."""
    import tensorflow as tf
    import tensorflow_compression as tfc
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    tf.get_logger().setLevel("ERROR")  # TF1 export helpers print deprecation notices
    widths = SIZES[size]
    tf.keras.utils.set_random_seed(seed)
    encoder, decoder, hyper_analysis, synth_scale, synth_mean = _layers(tf, tfc, widths)
    dummy = tf.zeros([1, 64, 64, 3])
    latent = encoder(dummy)
    hyper = hyper_analysis(latent)
    decoder(latent), synth_scale(hyper), synth_mean(hyper)
    # The factorized prior's parameters are random too (its default init is the trained model's starting point).
    prior = tfc.NoisyDeepFactorized(batch_shape=[widths["hyper"]])
    for var in prior.trainable_variables:
        var.assign(var + tf.random.normal(var.shape, stddev=0.1))
    side_model = tfc.ContinuousBatchedEntropyModel(prior, coding_rank=3, compression=True)
    step = (np.log(SCALES_MAX) - np.log(SCALES_MIN)) / (SCALES_LEVELS - 1)
    latent_model = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, SCALES_LEVELS, lambda i: tf.exp(np.log(SCALES_MIN) + step * i), coding_rank=3,
        compression=True)

    def scale_index(hyper_decoded, latent_shape):
        scales = synth_scale(hyper_decoded)[:, :latent_shape[0], :latent_shape[1], :]
        return tf.clip_by_value((tf.math.log(tf.maximum(scales, SCALES_MIN)) - np.log(SCALES_MIN)) / step,
                                0, SCALES_LEVELS - 1)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)])
    def sender(image):
        image_shape = tf.shape(image)[1:3]
        factor = 2 ** NUM_DOWN
        pad = (factor - image_shape % factor) % factor
        padded = tf.pad(image, [[0, 0], [0, pad[0]], [0, pad[1]], [0, 0]], "REFLECT")
        latent = encoder(tf.cast(padded, tf.float32) / 255.0)
        latent_shape = tf.shape(latent)[1:3]
        hyper = hyper_analysis(latent)
        hyper_shape = tf.shape(hyper)[1:3]
        hyper_string = side_model.compress(hyper)
        hyper_decoded = side_model.decompress(hyper_string, hyper_shape)
        means = synth_mean(hyper_decoded)[:, :latent_shape[0], :latent_shape[1], :]
        latent_string = latent_model.compress(latent, scale_index(hyper_decoded, latent_shape), loc=means)
        return dict(zip(SENDER_OUTPUTS, (latent_string, hyper_string, image_shape, latent_shape, hyper_shape)))

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string), tf.TensorSpec([1], tf.string),
                                  tf.TensorSpec([2], tf.int32), tf.TensorSpec([2], tf.int32),
                                  tf.TensorSpec([2], tf.int32)])
    def receiver(latent_string, hyper_string, image_shape, latent_shape, hyper_shape):
        hyper_decoded = side_model.decompress(hyper_string, hyper_shape)
        means = synth_mean(hyper_decoded)[:, :latent_shape[0], :latent_shape[1], :]
        latent = latent_model.decompress(latent_string, scale_index(hyper_decoded, latent_shape), loc=means)
        image = decoder(latent)[:, :image_shape[0], :image_shape[1], :]
        return {"image": tf.saturate_cast(tf.round(image * 255.0), tf.uint8)}

    return _metagraph({"sender": sender.get_concrete_function(), "receiver": receiver.get_concrete_function()},
                      convert_variables_to_constants_v2)


def _metagraph(functions: dict[str, Any], freeze) -> bytes:
    """One graph holding each frozen function under its own name scope, with a signature per function."""
    import tensorflow as tf

    frozen_functions = {name: freeze(function) for name, function in functions.items()}  # eagerly
    graph = tf.Graph()
    signatures = {}
    with graph.as_default():
        for name, function in functions.items():
            frozen = frozen_functions[name]
            placeholders = [t for t in frozen.inputs if t.dtype != tf.resource]
            inputs = [tf.compat.v1.placeholder(t.dtype, t.shape, name=f"{name}_input_{i}")
                      for i, t in enumerate(placeholders)]
            outputs = tf.nest.flatten(function.structured_outputs, expand_composites=True)
            imported = tf.compat.v1.import_graph_def(
                frozen.graph.as_graph_def(), input_map={t.name: i for t, i in zip(placeholders, inputs)},
                return_elements=[t.name for t in frozen.outputs], name=name)
            keys = sorted(function.structured_outputs)  # flatten() orders a dict by its sorted keys
            if name == "receiver":
                in_keys = SENDER_OUTPUTS
            else:
                in_keys = ("image",)
            signatures[name] = (dict(zip(in_keys, inputs)), dict(zip(keys, imported)))
        metagraph = tf.compat.v1.train.export_meta_graph(graph=graph)
        info = tf.compat.v1.saved_model.build_tensor_info
        for name, (inputs, outputs) in signatures.items():
            for key, tensor in inputs.items():
                metagraph.signature_def[name].inputs[key].CopyFrom(info(tensor))
            for key, tensor in outputs.items():
                metagraph.signature_def[name].outputs[key].CopyFrom(info(tensor))
    return metagraph.SerializeToString()


if __name__ == "__main__":  # python -m baselines.hific_model SEED SIZE OUT: how hific_tf.build runs it
    import sys

    seed_arg, size_arg, out_path = sys.argv[1:4]
    with open(out_path, "wb") as out_file:
        out_file.write(build_metagraph(int(seed_arg), size_arg))
