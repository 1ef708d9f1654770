//! The BERT encoder of all-MiniLM-L6-v2 (embeddings, self-attention, feed-forward; no pooler),
//! the computation of candle-transformers' `BertModel` with its weights laid out for texts of a
//! few tokens, where reading the weights from memory is most of the work. Pure: tensors in,
//! tensors out.

use candle_core::{D, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// Output features per weight panel: twice the 8 floats of an AVX2 register, the height of
/// gemm's f32 kernel, so each panel is read by one kernel call from start to end.
const PANEL: usize = 16;

/// A dense layer `x · Wᵀ + b` whose weight is kept as panels of [`PANEL`] output features, each
/// panel `in × PANEL` and contiguous.
///
/// gemm computes a product in kernels of 16 output features by a few tokens. Laid out as the
/// file has it (`out × in`), the weight is copied into such panels on every product; laid out as
/// `in × out`, the kernel reads 64 bytes then jumps a whole row, so hardly any read is
/// prefetched. As panels it is read once, front to back, at the memory's full speed — for a
/// query of a few tokens that is the cost of the whole product. Every output is still the same
/// sum over the same inputs in the same order.
struct Dense {
    /// `(out / PANEL, in, PANEL)`
    panels: Tensor,
    bias: Tensor,
    out: usize,
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        Self::from_parts(&vb.get((outputs, inputs), "weight")?, vb.get(outputs, "bias")?)
    }

    /// From a weight as stored (`out × in`) and its bias.
    fn from_parts(weight: &Tensor, bias: Tensor) -> Result<Self> {
        let (out, inputs) = weight.dims2()?;
        if !out.is_multiple_of(PANEL) {
            candle_core::bail!("{out} output features do not split into panels of {PANEL}");
        }
        let panels = weight.reshape((out / PANEL, PANEL, inputs))?.transpose(1, 2)?.contiguous()?;
        Ok(Self { panels, bias, out })
    }

    /// `x`: `(tokens, in)` → `(tokens, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let tokens = x.dim(0)?;
        // One product per panel (one batched call): (panels, tokens, PANEL).
        let per_panel = x.broadcast_left(self.panels.dim(0)?)?.matmul(&self.panels)?;
        per_panel.transpose(0, 1)?.reshape((tokens, self.out))?.broadcast_add(&self.bias)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, bias: vb.get(size, "bias")?, eps: eps as f32 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    /// Query, key and value in one product: `(tokens, 3 × hidden)`.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    up: Dense,
    down: Dense,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        let h = c.hidden_size;
        let attention = vb.pp("attention");
        let own = attention.pp("self");
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            Ok((own.pp(name).get((h, h), "weight")?, own.pp(name).get(h, "bias")?))
        };
        let (q, k, v) = (part("query")?, part("key")?, part("value")?);
        let qkv =
            Dense::from_parts(&Tensor::cat(&[&q.0, &k.0, &v.0], 0)?, Tensor::cat(&[&q.1, &k.1, &v.1], 0)?)?;
        Ok(Self {
            qkv,
            attention_out: Dense::load(attention.pp("output").pp("dense"), h, h)?,
            attention_norm: LayerNorm::load(attention.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            up: Dense::load(vb.pp("intermediate").pp("dense"), h, c.intermediate_size)?,
            down: Dense::load(vb.pp("output").pp("dense"), c.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
        })
    }
}

/// The encoder, loaded.
pub struct Encoder {
    words: Tensor,
    positions: Tensor,
    /// The embedding of token type 0, the only type a single text has.
    first_token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

impl Encoder {
    /// Loads the weights `vb` holds (as `BertModel::load` names them, with or without a `bert.`
    /// prefix) for the configuration `c`.
    pub fn load(vb: VarBuilder, c: &Config) -> Result<Self> {
        if c.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("hidden_act {:?}: only gelu is implemented", c.hidden_act);
        }
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {} is not a multiple of {} heads",
                c.hidden_size,
                c.num_attention_heads
            );
        }
        let vb =
            if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let h = c.hidden_size;
        let embeddings = vb.pp("embeddings");
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder.layer").pp(i), c))
            .collect::<Result<_>>()?;
        Ok(Self {
            words: embeddings.pp("word_embeddings").get((c.vocab_size, h), "weight")?,
            positions: embeddings.pp("position_embeddings").get((c.max_position_embeddings, h), "weight")?,
            first_token_type: embeddings
                .pp("token_type_embeddings")
                .get((c.type_vocab_size, h), "weight")?
                .narrow(0, 0, 1)?,
            embedding_norm: LayerNorm::load(embeddings.pp("LayerNorm"), h, c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
        })
    }

    /// The last hidden state, `(texts × len, hidden)`, for `ids` of `texts` rows of `len` token
    /// ids each, padded at the end; `lengths` holds each row's real tokens. Padding never
    /// changes a text's real rows: attention gives it no weight.
    pub fn forward(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (texts, len) = ids.dims2()?;
        let hidden = self.words.index_select(&ids.flatten_all()?, 0)?.reshape((texts, len, ()))?;
        let hidden = hidden
            .broadcast_add(&self.first_token_type)?
            .broadcast_add(&self.positions.narrow(0, 0, len)?)?
            .reshape((texts * len, ()))?;
        let mut hidden = self.embedding_norm.forward(&hidden)?;
        let padding = self.padding_bias(lengths, len, ids.device())?;
        for layer in &self.layers {
            hidden = self.layer(layer, &hidden, texts, len, padding.as_ref())?;
        }
        Ok(hidden)
    }

    /// What attention adds to each score: 0 for a real token, the lowest f32 for padding; `None`
    /// when nothing is padded (then it would add only zeros).
    fn padding_bias(
        &self,
        lengths: &[usize],
        len: usize,
        device: &candle_core::Device,
    ) -> Result<Option<Tensor>> {
        if lengths.iter().all(|&l| l == len) {
            return Ok(None);
        }
        let bias: Vec<f32> =
            lengths.iter().flat_map(|&l| (0..len).map(move |i| if i < l { 0.0 } else { f32::MIN })).collect();
        Tensor::from_vec(bias, (lengths.len(), 1, 1, len), device).map(Some)
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        texts: usize,
        len: usize,
        padding: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = x.dim(1)?;
        let head = hidden / self.heads;
        // (texts, 3 × heads, len, head): queries, keys and values of each head, token by token.
        let qkv =
            l.qkv.forward(x)?.reshape((texts, len, 3 * self.heads, head))?.transpose(1, 2)?.contiguous()?;
        let part = |i: usize| qkv.narrow(1, i * self.heads, self.heads)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = (q.matmul(&k.t()?)? / (head as f64).sqrt())?;
        let scores = match padding {
            Some(bias) => scores.broadcast_add(bias)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights.matmul(&v)?.transpose(1, 2)?.reshape((texts * len, hidden))?;
        let attended = l.attention_norm.forward(&(l.attention_out.forward(&context)? + x)?)?;
        let up = gelu(&l.up.forward(&attended)?)?;
        l.output_norm.forward(&(l.down.forward(&up)? + attended)?)
    }
}

/// Mean of each text's real rows of `hidden` (`texts × len` rows), scaled to unit length: what
/// sentence-transformers' Pooling (mean) and Normalize modules compute.
pub fn mean_pool_normalised(hidden: &Tensor, lengths: &[usize]) -> Result<Vec<Vec<f32>>> {
    let rows = hidden.to_vec2::<f32>()?;
    let len = rows.len() / lengths.len().max(1);
    let width = hidden.dim(D::Minus1)?;
    Ok(lengths
        .iter()
        .enumerate()
        .map(|(t, &real)| {
            let mut mean = vec![0f32; width];
            for row in &rows[t * len..t * len + real] {
                mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
            }
            let count = (real as f32).max(1e-9);
            mean.iter_mut().for_each(|m| *m /= count);
            let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            mean
        })
        .collect())
}

/// GELU with the exact (erf) form, `x · (1 + erf(x / √2)) / 2`, as `Tensor::gelu_erf` computes it
/// but with [`erf`] in place of libm's `erff`, which candle calls once per element.
fn gelu(x: &Tensor) -> Result<Tensor> {
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    for v in &mut values {
        *v = (erf(*v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * *v;
    }
    Tensor::from_vec(values, x.shape(), x.device())
}

/// erf for f32 as a rational function of x² on [-4, 4] (beyond, erf is 1 to f32 precision):
/// Eigen's `generic_fast_erf_float` coefficients, also used by XLA and TVM. No branches, so the
/// loop over a tensor vectorises; within 5e-7 of libm's `erff` (the test below checks).
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_4e-10_f32;
    for c in [2.770_681_5e-8, -2.101_024e-6, -5.692_506_2e-5, -7.349_906_4e-4, -2.954_6e-3, -1.609_603_3e-2] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_15e-5_f32;
    for c in [-2.133_740_5e-4, -1.682_827e-3, -7.373_329_3e-3, -1.426_473_9e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_libms_erff_to_a_few_units_in_the_last_place() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let exact = candle_core::cpu::erf::erf_f32(x);
            worst = worst.max((erf(x) - exact).abs());
        }
        assert!(worst < 5e-7, "largest difference {worst:e}");
    }
}
