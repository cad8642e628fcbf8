// Package features turns a censored history into the XGBoost baseline's sparse feature row:
// token counts over the whole history and over recent windows (the same vocabulary the BERT
// sees, subword pieces included), age at prediction time and sex. Training and serving build
// rows through the same Space, so a served prediction sees exactly the features the model was
// trained on.
package features
