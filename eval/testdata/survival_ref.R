# Reference figures for eval's survival metrics (survival_r_test.go), from R's survival and
# riskRegression (Debian: r-cran-survival, r-cran-riskregression).
#
#   Rscript survival_ref.R DIR
#
# DIR/cases.csv lists the datasets: name, horizons (";"-separated), tau, groups. Each dataset
# is DIR/NAME.csv (time, status, risk, group: the Go side's risk group). For each, this writes
# DIR/NAME.out.csv: key,value lines (value as %.17g, NA for NA and NaN).
suppressPackageStartupMessages({
  library(survival)
  library(prodlim)
  library(riskRegression)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript survival_ref.R DIR")
dir <- args[1]

out <- list()
put <- function(key, v) {
  v <- as.numeric(v)
  if (length(v) == 0) return(invisible())
  keys <- if (length(v) == 1) key else paste0(key, ".", seq_along(v))
  val <- ifelse(is.na(v), "NA", sprintf("%.17g", v))
  out[[length(out) + 1]] <<- data.frame(key = keys, value = val)
}

# Kaplan-Meier: survfit's default (conf.type = "log", conf.int = 0.95), every step and the
# summary at the horizons that are within follow-up (summary errors past the last time).
km <- function(prefix, d, horizons) {
  f <- survfit(Surv(time, status) ~ 1, data = d)
  put(paste0(prefix, ".step.time"), f$time)
  put(paste0(prefix, ".step.n.risk"), f$n.risk)
  put(paste0(prefix, ".step.n.event"), f$n.event)
  put(paste0(prefix, ".step.n.censor"), f$n.censor)
  put(paste0(prefix, ".step.surv"), f$surv)
  put(paste0(prefix, ".step.std.err"), f$std.err)
  put(paste0(prefix, ".step.lower"), f$lower)
  put(paste0(prefix, ".step.upper"), f$upper)
  for (k in seq_along(horizons)) {
    h <- horizons[k]
    if (h > max(d$time)) next
    s <- summary(f, times = h)
    p <- paste0(prefix, ".at.", k)
    put(paste0(p, ".surv"), s$surv)
    put(paste0(p, ".std.err"), s$std.err)
    put(paste0(p, ".lower"), s$lower)
    put(paste0(p, ".upper"), s$upper)
    put(paste0(p, ".n.risk"), s$n.risk)
  }
}

conc <- function(prefix, fit) {
  put(paste0(prefix, ".c"), fit$concordance)
  put(paste0(prefix, ".se"), sqrt(fit$var))
  put(paste0(prefix, ".concordant"), fit$count["concordant"])
  put(paste0(prefix, ".discordant"), fit$count["discordant"])
  put(paste0(prefix, ".tied.x"), fit$count["tied.x"])
}

cases <- read.csv(file.path(dir, "cases.csv"), stringsAsFactors = FALSE)
for (ci in seq_len(nrow(cases))) {
  out <- list()
  name <- cases$name[ci]
  horizons <- as.numeric(strsplit(cases$horizons[ci], ";")[[1]])
  tau <- cases$tau[ci]
  groups <- cases$groups[ci]
  d <- read.csv(file.path(dir, paste0(name, ".csv")))
  out[[1]] <- data.frame(key = c("version.survival", "version.riskRegression"),
                         value = c(as.character(packageVersion("survival")),
                                   as.character(packageVersion("riskRegression"))))

  km("km", d, horizons)

  # Risk groups as R would cut them, then each Go group's Kaplan-Meier.
  br <- unique(quantile(d$risk, seq(0, 1, length.out = groups + 1)))
  rgroup <- if (length(br) > 1) {
    as.integer(droplevels(cut(d$risk, br, include.lowest = TRUE)))
  } else {
    rep(1L, nrow(d))
  }
  put("group.of", rgroup)
  for (g in sort(unique(d$group))) km(paste0("group.", g), d[d$group == g, ], horizons)

  # Harrell's C and Uno's C truncated at tau (risk: higher means earlier, reverse = TRUE).
  conc("harrell", concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE))
  uno <- if (is.finite(tau)) {
    concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE, timewt = "n/G2", ymax = tau)
  } else {
    concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE, timewt = "n/G2")
  }
  conc("uno", uno)

  # Time-dependent AUC and Brier with Kaplan-Meier IPCW; the risk is the same at every
  # horizon. Score leaves out horizons past the last follow-up time.
  keep <- which(horizons <= max(d$time))
  if (length(keep) > 0) {
    hv <- horizons[keep]
    X <- matrix(d$risk, nrow = nrow(d), ncol = length(hv))
    sc <- Score(list(model = X), formula = Hist(time, status) ~ 1, data = d, times = hv,
                metrics = c("auc", "brier"), cens.model = "km", null.model = TRUE,
                summary = "ipa", se.fit = FALSE)
    auc <- sc$AUC$score[model == "model"]
    brier <- sc$Brier$score[model == "model"]
    null <- sc$Brier$score[model == "Null model"]
    for (j in seq_along(hv)) {
      k <- keep[j]
      put(paste0("score.", k, ".auc"), auc$AUC[auc$times == hv[j]])
      put(paste0("score.", k, ".brier"), brier$Brier[brier$times == hv[j]])
      put(paste0("score.", k, ".brier.null"), null$Brier[null$times == hv[j]])
      put(paste0("score.", k, ".ipa"), brier$IPA[brier$times == hv[j]])
    }
  }
  write.csv(do.call(rbind, out), file.path(dir, paste0(name, ".out.csv")), row.names = FALSE, quote = FALSE)
}
