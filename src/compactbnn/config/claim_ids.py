"""The id of every claim of the paper that ``compactbnn.paper.claims`` checks, in the order of claims.md.

Here, in the standard library alone, so that the config check (``claims.skip``, thresholds) knows them
without importing numpy or pandas.
"""

CLAIM_IDS = (
    "not_stable_under_training", "not_recovered_at_init", "barrier_grows_with_not", "control_barrier_small",
    "init_barrier_small", "distance_grows_in_training", "control_distance_small",
    "ridge_before_rebasin", "no_ridge_after_rebasin",
    "not_path_zero_at_small_lambda", "not_path_rises_monotonically", "not_path_random_at_large_lambda",
    "not_path_after_rebasin",
    "hmc_q_r_agreement", "hmc_q_r_tv", "hmc_mu_r_accuracy", "hmc_sigma_r_tail_shorter",
    "ensemble_q_r_agreement", "ensemble_q_r_tv", "ensemble_mu_r_accuracy", "ensemble_sigma_r_tail_shorter",
    "merged_pruning_beats_ensemble", "merged_pruning_beats_hmc", "hmc_prior_level_sigma", "vi_prior_level_sigma",
    "rhat_drops_after_alignment", "weight_space_means_agree_after_rebasin",
    # beyond the paper: cyclical SG-MCMC as a fourth posterior
    "sgmcmc_q_r_agreement", "sgmcmc_q_r_tv", "sgmcmc_mu_r_accuracy", "sgmcmc_prior_level_sigma",
    "sgmcmc_rhat_drops_after_alignment", "sgmcmc_weight_space_agrees_after_rebasin",
)
