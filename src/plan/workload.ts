/** What a plan is asked about: a model serving requests, or a model being trained. */

export type ComputeDType = 'float32' | 'bfloat16';

export interface InferenceWorkload {
  mode: 'inference';
  /** Requests decoded at once. */
  batch: number;
  promptTokens: number;
  outputTokens: number;
  /** The dtype of the weights and of the paged KV cache (the engine keeps both in the model's dtype). */
  kvDtype: ComputeDType;
  /** Positions per KV-cache block (the InferenceEngine's blockSize). */
  blockSize: number;
  /** Prompt tokens one engine step may prefill (the InferenceEngine's tokenBudget). */
  tokenBudget: number;
  /** Decode steps replayed as CUDA graphs (the engine's default on CUDA). */
  cudaGraphs: boolean;
}

/**
 * How the training state is divided over data-parallel GPUs, ZeRO's stages: 0 every GPU holds everything; 1 the
 * optimizer state (moments and float32 masters) is split; 2 the gradients too; 3 the compute weights too (each
 * layer's weights are gathered while it runs).
 */
export type ZeroStage = 0 | 1 | 2 | 3;

export interface TrainingWorkload {
  mode: 'training';
  /** Sequences per micro-batch on each GPU. */
  batch: number;
  seqLen: number;
  /** The compute dtype; the masters and the optimizer's state are float32 either way. */
  precision: ComputeDType;
  optimizer: 'adamw' | 'adamw8bit';
  activationCheckpointing: boolean;
  /** Micro-batches per optimizer step (memory of one micro-batch; tokens per step multiply). */
  gradAccum: number;
  gpus: number;
  zeroStage: ZeroStage;
}

export type Workload = InferenceWorkload | TrainingWorkload;
